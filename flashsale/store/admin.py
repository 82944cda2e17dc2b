"""Listings from the durable record: sales, a sale's orders, the orders of a serial (the
admin desk), and a buyer's own order history (``GET /v1/me/orders``).

Pages are keyset pages (store/paging.py), newest first. Orders come from
PostgreSQL (the write-behind's copy: an order appears within its lag of being
made) in the engine's ``Order`` shape, so an admin reads them as a buyer reads
their own. Sales come with their live counters from Redis (the authority) when
Redis has them; a sale only PostgreSQL knows (Redis lost it: ``flashsale
recover``) is listed with its stored status and no counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from flashsale.engine.engine import Engine
from flashsale.engine.errors import SaleNotFound
from flashsale.engine.models import Order
from flashsale.errors import ValidationFailed
from flashsale.store.paging import Page, check_limit, decode_cursor, encode_cursor
from flashsale.store.queries import q

SERIAL_HISTORY_LIMIT = 100


class SaleListed(msgspec.Struct, kw_only=True):
    """One line of the admin listing: live from Redis, or as PostgreSQL last stored it.
    The sale itself (``GET /v1/sales/{id}``) has every setting."""

    sale_id: str
    name: str
    status: str
    """As the sale reads (scheduled, open, paused, closed, sold_out); PostgreSQL's stored
    status (loading, open, paused, closed) when Redis does not have the sale."""
    total: int
    available: int | None
    reserved: int | None
    sold: int | None
    created_at: datetime
    in_redis: bool
    """False: only PostgreSQL knows the sale (its counters are unknown)."""
    tune_pending: bool = False
    """A bucketed drop whose last tune has not reached every bucket yet (as the sale reads)."""


def _from_row(row: Mapping[str, Any]) -> SaleListed:
    return SaleListed(
        **{name: row[name] for name in SaleListed.__struct_fields__ if name in row},
        available=None,
        reserved=None,
        sold=None,
        in_redis=False,
    )


async def _listed(engine: Engine, row: Mapping[str, Any]) -> SaleListed:
    try:
        sale = await engine.get_sale(row["sale_id"])
    except SaleNotFound:
        return _from_row(row)
    fields = {name: getattr(sale, name) for name in sale.__struct_fields__}
    fields["created_at"] = sale.created_at or row["created_at"]
    return SaleListed(
        **{name: fields[name] for name in SaleListed.__struct_fields__ if name in fields},
        in_redis=True,
    )


async def list_sales(
    pool: asyncpg.Pool, engine: Engine, *, limit: int = 50, cursor: str | None = None
) -> Page[SaleListed]:
    """Every sale, newest first."""
    after: list[Any] = [None, None]
    if cursor:
        stamp, sale_id = decode_cursor(cursor, 2)
        after = [_stamp(stamp), str(sale_id)]
    rows = await pool.fetch(q("admin_sales"), *after, check_limit(limit) + 1)
    shown = rows[:limit]
    items = [await _listed(engine, row) for row in shown]
    more = len(rows) > limit
    return Page(items, _cursor_after(shown[-1], "sale_id") if more else None)


def order_of_row(row: Mapping[str, Any]) -> Order:
    """An order as PostgreSQL stores it, in the engine's shape (a range serial is a number)."""
    fields = {name: row[name] for name in Order.__struct_fields__ if name in row}
    if row["serial_kind"] in (b"r", "r"):  # asyncpg reads PostgreSQL's "char" as bytes
        fields["serial"] = int(row["serial"])
    return Order(**fields)


async def sale_orders(
    pool: asyncpg.Pool,
    sale_id: str,
    *,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Order]:
    """A sale's orders as persisted, newest first, optionally of one status."""
    after: list[Any] = [None, None]
    if cursor:
        stamp, order_id = decode_cursor(cursor, 2)
        after = [_stamp(stamp), str(order_id)]
    rows = await pool.fetch(q("admin_sale_orders"), sale_id, status, *after, check_limit(limit) + 1)
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(
        [order_of_row(row) for row in shown],
        _cursor_after(shown[-1], "order_id") if more else None,
    )


async def buyer_orders(
    pool: asyncpg.Pool,
    user_id: str,
    *,
    status: str | None = None,
    sale_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Order]:
    """A buyer's orders as persisted, newest first (ties by order_id), optionally of one
    status or one sale: one index range scan a page, however long the history."""
    after: list[Any] = [None, None]
    if cursor:
        stamp, order_id = decode_cursor(cursor, 2)
        after = [_stamp(stamp), str(order_id)]
    rows = await pool.fetch(
        q("buyer_orders"), user_id, status, sale_id, *after, check_limit(limit) + 1
    )
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(
        [order_of_row(row) for row in shown],
        _cursor_after(shown[-1], "order_id") if more else None,
    )


def page_of_orders(orders: list[Order], *, limit: int, cursor: str | None) -> Page[Order]:
    """The same paging over orders already in memory (a server without PostgreSQL)."""
    ordered = sorted(orders, key=lambda o: (o.created_at, o.order_id), reverse=True)
    if cursor:
        stamp, order_id = decode_cursor(cursor, 2)
        key = (_stamp(stamp), str(order_id))
        ordered = [o for o in ordered if (o.created_at, o.order_id) < key]
    shown = ordered[: check_limit(limit)]
    more = len(ordered) > limit
    last = shown[-1] if shown else None
    next_cursor = (
        encode_cursor(last.created_at.isoformat(), last.order_id) if more and last else None
    )
    return Page(shown, next_cursor)


async def orders_by_serial(pool: asyncpg.Pool, sale_id: str, serial: str) -> list[Order]:
    """Every order that held ``serial`` in the sale (the live one first, if any), newest first."""
    rows = await pool.fetch(q("admin_orders_by_serial"), sale_id, serial, SERIAL_HISTORY_LIMIT)
    return [order_of_row(row) for row in rows]


def _cursor_after(row: Mapping[str, Any], id_column: str) -> str:
    return encode_cursor(row["created_at"].isoformat(), row[id_column])


def _stamp(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed("cursor is not one this server gave out") from None
