"""The deep audit: every order of a sale, Redis against PostgreSQL, chunk by chunk.

The buyers hash gives every order id (each buyer's live and released orders,
``engine/keys.py``), so there is no keyspace SCAN: buyers are taken in chunks
of about ``chunk`` orders, each chunk read in one MULTI (every key is in the
sale's slot) and compared with PostgreSQL by one query that returns only the
differences. Memory stays bounded by the chunk. The per-buyer and per-order
checks below run on each chunk; their violations add up in ``OrderScan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from flashsale.engine import statuses
from flashsale.engine.codec import text
from flashsale.engine.keys import SaleKeys, history_field, live_field, order_ids_in
from flashsale.engine.models import decode_record
from flashsale.store.audit.report import EXAMPLES, Violation, violation
from flashsale.store.queries import q
from flashsale.store.streams import AnyRedis

CHUNK = 5000  # orders per Redis pipeline and per PostgreSQL comparison
MAX_TRACKED = 100_000  # orders behind in PostgreSQL remembered for the re-check


@dataclass(frozen=True)
class Buyer:
    """One buyer as one MULTI read it: its orders and the live count Redis keeps for it."""

    user: str
    orders: list[tuple[str, Any]]  # (order id, [status, version, user_id]); no order: status None
    counted: int  # its live orders as the buyers hash lists them (what the limit reads)
    complete: bool  # False: still buying while read, so its counts are not checked
    listed_live: frozenset[str] = frozenset()  # the order ids its live list names


class OrderScan:
    """What the scan found: order totals, the orders behind in PostgreSQL, violations."""

    def __init__(self) -> None:
        self.orders = 0
        self.pending = 0
        self.paid = 0
        self.kept = 0  # refunded after delivery, still listed live (the token is held)
        self.matched = 0  # orders found in PostgreSQL (any version)
        self.behind: set[str] = set()  # missing or older in PostgreSQL when compared
        self.untracked = 0  # behind, beyond MAX_TRACKED
        self.incomplete = 0  # buyers still buying while read: their counts not checked
        self._found: dict[str, Violation] = {}

    def add(self, found: list[Violation]) -> None:
        """One violation per code over all chunks: counts add up, the first examples stay."""
        for v in found:
            seen = self._found.get(v.code)
            if seen is None:
                self._found[v.code] = violation(v.code, v.detail, v.count, v.examples)
            else:
                seen.count += v.count
                seen.examples = (seen.examples + v.examples)[:EXAMPLES]

    @property
    def violations(self) -> list[Violation]:
        return list(self._found.values())


# -- the per-buyer and per-order checks ------------------------------------------------


def counted_without_order(buyer: Buyer) -> list[Violation]:
    """The buyer is counted for an order Redis does not have (a half-replayed purchase)."""
    return [
        violation(
            "counted_without_order",
            "a buyer is counted for an order Redis does not have",
            examples=[order_id],
        )
        for order_id, values in buyer.orders
        if values[0] is None
    ]


def buyer_count_mismatch(buyer: Buyer, live: int) -> list[Violation]:
    """The buyer's live-order count in Redis is not the number of its live orders."""
    counted = buyer.counted
    if live == counted:
        return []
    return [
        violation(
            "buyer_count_mismatch",
            "a buyer's live-order count differs from its live orders",
            examples=[f"{buyer.user}: counted {counted}, holds {live}"],
        )
    ]


def buyer_over_limit(buyer: Buyer, live: int, max_limit: int) -> list[Violation]:
    """The buyer holds more live orders in Redis than the highest limit the sale had."""
    if live <= max_limit:
        return []
    return [
        violation(
            "buyer_over_limit",
            f"buyers with more than {max_limit} live orders in Redis",
            examples=[f"{buyer.user}: {live}"],
        )
    ]


async def postgres_ahead(redis: AnyRedis, keys: SaleKeys, rows: list[Any]) -> list[Violation]:
    """Orders PostgreSQL has newer than (or different from) what Redis said a moment ago.

    The order may have moved on since its chunk was read: Redis is read again,
    after PostgreSQL, before calling it ``postgres_ahead`` (Redis lost a
    transition) or, at the same version, ``state_mismatch``.
    """
    found: list[Violation] = []
    fresh = await read_orders(redis, keys, [r["order_id"] for r in rows])
    for row, now in zip(rows, fresh, strict=True):
        if now is None:
            continue  # counted_without_order would have caught a vanished order
        status, version = now
        if version < row["pg_version"]:
            found.append(
                violation(
                    "postgres_ahead",
                    "PostgreSQL holds a newer state than Redis (Redis lost a transition)",
                    examples=[
                        f"{row['order_id']}: v{row['pg_version']} {row['pg_status']} vs "
                        f"v{version} {status}"
                    ],
                )
            )
        elif version == row["pg_version"] and status != row["pg_status"]:
            found.append(
                violation(
                    "state_mismatch",
                    "same version, different state",
                    examples=[f"{row['order_id']}: {row['pg_status']} vs {status}"],
                )
            )
    return found


# -- the scan --------------------------------------------------------------------------


async def scan_orders(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    keys: SaleKeys,
    sale_id: str,
    max_limit: int,
    chunk: int,
    *,
    into: OrderScan | None = None,
) -> OrderScan:
    """Every buyer's orders, ``chunk`` orders at a time, against PostgreSQL (of one slot:
    a bucketed drop's buckets add up ``into`` one scan)."""
    scan = OrderScan() if into is None else into
    batch: list[str] = []
    in_batch = 0  # orders of the buyers in the batch (live ones: history is read later)
    async for field, value in redis.hscan_iter(keys.buyers, match="l:*", count=2000):
        batch.append(text(field)[2:])
        in_batch += 1 + len(value) // 20
        if in_batch >= chunk:
            await _scan_chunk(redis, pool, keys, sale_id, batch, max_limit, scan)
            batch, in_batch = [], 0
    if batch:
        await _scan_chunk(redis, pool, keys, sale_id, batch, max_limit, scan)
    return scan


async def _scan_chunk(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    keys: SaleKeys,
    sale_id: str,
    buyers: list[str],
    max_limit: int,
    scan: OrderScan,
) -> None:
    live: dict[str, int] = {}
    order_ids: list[str] = []
    order_statuses: list[str] = []
    versions: list[int] = []
    for buyer in await _read_buyers(redis, keys, sale_id, buyers):
        scan.add(counted_without_order(buyer))
        for order_id, values in buyer.orders:
            if values[0] is None:
                continue
            status, version = text(values[0]), int(values[1])
            scan.orders += 1
            if status in statuses.HOLDS_SERIAL:
                live[buyer.user] = live.get(buyer.user, 0) + 1
            elif status == "refunded" and order_id in buyer.listed_live:
                scan.kept += 1  # refunded after delivery: its buyer still holds the token
                live[buyer.user] = live.get(buyer.user, 0) + 1
            if status == "pending_payment":
                scan.pending += 1
            elif status in statuses.SOLD:
                scan.paid += 1
            order_ids.append(order_id)
            order_statuses.append(status)
            versions.append(version)
        if not buyer.complete:
            scan.incomplete += 1
            continue
        count = live.get(buyer.user, 0)
        scan.add(buyer_count_mismatch(buyer, count))
        scan.add(buyer_over_limit(buyer, count, max_limit))
    if not order_ids:
        return
    async with pool.acquire() as conn:
        diffs = await conn.fetch(q("audit_compare"), sale_id, order_ids, order_statuses, versions)
    missing = 0
    ahead: list[Any] = []
    for row in diffs:
        if row["pg_version"] is None or row["pg_version"] < row["redis_version"]:
            missing += row["pg_version"] is None
            if len(scan.behind) < MAX_TRACKED:
                scan.behind.add(row["order_id"])
            else:
                scan.untracked += 1
        else:
            ahead.append(row)
    scan.matched += len(order_ids) - missing
    if ahead:
        scan.add(await postgres_ahead(redis, keys, ahead))


def _fields(users: list[str]) -> list[str]:
    return [f for user in users for f in (history_field(user), live_field(user))]


def _record(packed: Any) -> list[Any]:
    if packed is None:
        return [None, None, None]
    r = decode_record(packed)
    return [r.status, r.version, r.user_id]


async def _read_buyers(
    redis: AnyRedis, keys: SaleKeys, sale_id: str, buyers: list[str]
) -> list[Buyer]:
    # One MULTI per chunk (every key is in the sale's slot): the buyers' orders and
    # their live and released lists, read in one atomic snapshot, even during a live
    # sale. The ids come from a read just before; a buyer whose lists moved in between
    # is read again (up to 3 times; one still buying is left to the next audit).
    read: list[Buyer] = []
    todo = buyers
    listed = await redis.hmget(keys.buyers, _fields(todo))
    for attempt in range(3):
        ids = {
            user: order_ids_in(keys.sale_id, text(listed[2 * n] or b""))
            + order_ids_in(keys.sale_id, text(listed[2 * n + 1] or b""))
            for n, user in enumerate(todo)
        }
        every = [order_id for user in todo for order_id in ids[user]]
        pipe = redis.pipeline(transaction=True)
        pipe.hmget(keys.buyers, _fields(todo))
        if every:
            pipe.hmget(keys.orders, every)
        replies = await pipe.execute()
        now_listed = replies[0]
        records = iter(replies[1] if every else [])
        moved: list[str] = []
        moved_listed: list[Any] = []
        for n, user in enumerate(todo):
            orders = [(order_id, _record(next(records))) for order_id in ids[user]]
            before, after = listed[2 * n : 2 * n + 2], now_listed[2 * n : 2 * n + 2]
            if before != after and attempt < 2:
                moved.append(user)
                moved_listed += after
                continue
            live = text(after[1] or b"")
            live_ids = frozenset(order_ids_in(keys.sale_id, live))
            read.append(Buyer(user, orders, len(live) // 20, before == after, live_ids))
        if not moved:
            break
        todo, listed = moved, moved_listed
    return read


async def read_orders(
    redis: AnyRedis, keys: SaleKeys, order_ids: list[str]
) -> list[tuple[str, int] | None]:
    """(status, version) of each order in Redis now, in one read; None when it is gone."""
    if not order_ids:
        return []
    values = await redis.hmget(keys.orders, order_ids)
    out: list[tuple[str, int] | None] = []
    for packed in values:
        status, version, _ = _record(packed)
        out.append(None if status is None else (status, version))
    return out


async def still_behind(
    redis: AnyRedis, pool: asyncpg.Pool, keys: SaleKeys, sale_id: str, order_ids: list[str]
) -> list[str]:
    """Orders that are still missing or older in PostgreSQL than in Redis, re-read now."""
    still: list[str] = []
    for start in range(0, len(order_ids), CHUNK):
        part = order_ids[start : start + CHUNK]
        states = await read_orders(redis, keys, part)
        present = [(o, s) for o, s in zip(part, states, strict=True) if s is not None]
        async with pool.acquire() as conn:
            diffs = await conn.fetch(
                q("audit_compare"),
                sale_id,
                [o for o, _ in present],
                [s[0] for _, s in present],
                [s[1] for _, s in present],
            )
        still += [
            f"{r['order_id']}: "
            + (
                "not in PostgreSQL"
                if r["pg_version"] is None
                else f"v{r['pg_version']} in PostgreSQL, v{r['redis_version']} in Redis"
            )
            for r in diffs
            if r["pg_version"] is None or r["pg_version"] < r["redis_version"]
        ]
    return still
