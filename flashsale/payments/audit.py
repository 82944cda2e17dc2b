"""Money audit of a sale: paid orders = captured payments - refunds.

Terms (all in cents, one sale):

- ``captured``: money providers or wallets took, i.e. payments in status
  ``succeeded`` (balance debits credited back in the same flow are ``reversed``
  and count on neither side);
- ``refunds``: refund requests not rejected (pending, approved or refunded):
  money that is, or will be, given back;
- ``retained``: refunds an operator rejected for a payment that is not its
  order's (a duplicate or late payment kept on purpose);
- ``paid_orders``: price of the orders in status paid or delivered, less the coins an
  order of a checkout carries (flashsale/orders).

The identity ``paid_orders == captured - refunds - retained`` must hold, and
order by order: a paid (or delivered, refund_pending, refunded) order names a
kept payment of its own for exactly its price; an expired, cancelled or
pending order keeps no payment; every payment settled as ``refund`` has a
refund row; no succeeded payment stays unsettled for long.

Memory stays flat whatever the sale's size: the sums are PostgreSQL
aggregates, payments wrong on their own come back as a few examples, and the
kept payments are walked in pages of ``PAGE`` (keyset), each page's orders
read from Redis (the authority; from PostgreSQL's ``orders`` without an
engine). Orders paid without a kept payment are found in PostgreSQL's copy (a
few candidates, each checked against Redis), so an order not yet persisted is
judged once the write-behind has drained. At most ``MAX_VIOLATIONS`` are listed.
Coins: each order of a checkout carrying coins got them back exactly when it was
released, and every coin balance sums its ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg

from flashsale.engine import statuses
from flashsale.engine.engine import Engine
from flashsale.payments import coins as coin_ledger
from flashsale.payments import wallet
from flashsale.payments.coins import coins_given_back
from flashsale.payments.models import MoneyAudit
from flashsale.payments.queries import q

UNSETTLED_GRACE_S = 60
PAGE = 1000
EXAMPLES = 20
MAX_VIOLATIONS = 50
READS_AT_ONCE = 64


class _Found:
    """Violations, the first ``MAX_VIOLATIONS`` kept and the rest counted."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.more = 0

    def add(self, violation: str) -> None:
        if len(self.listed) < MAX_VIOLATIONS:
            self.listed.append(violation)
        else:
            self.more += 1

    def all(self) -> list[str]:
        return self.listed + ([f"... and {self.more} more"] if self.more else [])


_FAULTS = {
    "unsettled": "payment {payment_id} succeeded but is not settled",
    "refund_row_missing": "payment {payment_id} owes a refund but has no refund row",
    "kept_twice": "order {order_id} keeps more than one payment",
}


async def _states(
    engine: Engine | None, rows: list[Mapping[str, Any]]
) -> list[tuple[str, int] | None]:
    """(status, price) of each row's order: Redis when given, else PostgreSQL's copy."""
    if engine is None:
        return [
            (r["pg_status"], int(r["pg_price"])) if r["pg_status"] is not None else None
            for r in rows
        ]
    gate = asyncio.Semaphore(READS_AT_ONCE)

    async def one(order_id: str) -> tuple[str, int] | None:
        async with gate:
            order = await engine.get_order(order_id)
        return None if order is None else (order.status, order.price_cents)

    return list(await asyncio.gather(*(one(r["order_id"]) for r in rows)))


def _judge_kept(row: Mapping[str, Any], state: tuple[str, int] | None, found: _Found) -> int | None:
    """One kept payment against its order; the order's price when it counts as paid."""
    order_id, payment_id = row["order_id"], row["payment_id"]
    if state is None:
        found.add(f"payment kept for unknown order {order_id}")
        return None
    status, price = state
    price -= int(row["coins"])  # an order of a checkout is paid its price less its coins
    if status not in statuses.PAYMENT_KEPT:
        found.add(f"order {order_id} is {status} yet keeps payment {payment_id}")
        return None
    if int(row["captured_cents"]) != price:
        found.add(f"order {order_id}: captured amount differs from the price")
    if status in ("refund_pending", "refunded") and not row["cancel_refund"]:
        found.add(f"order {order_id} is {status} without a refund request")
    return price if status in statuses.PAID else None


async def _unpaid_candidates(
    pool: asyncpg.Pool, engine: Engine | None, sale_id: str, found: _Found
) -> None:
    """Orders paid (or refunding) without a kept payment of their own."""
    candidates = await pool.fetch(
        q("audit_orders_without_payment"), sale_id, sorted(statuses.PAYMENT_KEPT), EXAMPLES
    )
    for row in candidates:
        order_id = row["order_id"]
        if engine is not None:
            order = await engine.get_order(order_id)  # PostgreSQL's copy may lag
            if order is None or order.status not in statuses.PAYMENT_KEPT:
                continue
            kept = await pool.fetchrow(q("payment_of_order"), order.payment_id or "", order_id)
            if kept is not None and kept["settlement"] == "kept":
                continue
            found.add(f"order {order_id} is {order.status} without a payment of its own")
        else:
            found.add(f"order {order_id} is paid without a payment of its own")


async def _coins(pool: asyncpg.Pool, engine: Engine | None, sale_id: str) -> list[str]:
    """Coins given back exactly when an order carrying them was released; the orders'
    states from Redis when given, else PostgreSQL's copy. Only the checkout orders of the
    sale that carry coins are read."""
    rows = await pool.fetch(q("audit_coins"), sale_id)
    orders: dict[str, dict[str, Any]] = {}
    for row in rows:
        if engine is not None:
            order = await engine.get_order(row["order_id"])
            if order is not None:
                orders[order.order_id] = {"status": order.status, "updated_at": order.updated_at}
        elif row["pg_status"] is not None:
            orders[row["order_id"]] = {"status": row["pg_status"], "updated_at": row["pg_updated"]}
    return coins_given_back(rows, orders)


async def money_audit(
    pool: asyncpg.Pool, sale_id: str, engine: Engine | None = None, *, page: int = PAGE
) -> MoneyAudit:
    found = _Found()
    totals = await pool.fetchrow(q("audit_totals"), sale_id)
    for fault in await pool.fetch(q("audit_payment_faults"), sale_id, UNSETTLED_GRACE_S, EXAMPLES):
        found.add(_FAULTS[fault["fault"]].format(**dict(fault)))
    paid_orders = paid_orders_cents = 0
    try:
        after = ""
        while True:
            rows = await pool.fetch(q("audit_kept_page"), sale_id, after, page)
            if not rows:
                break
            for row, state in zip(rows, await _states(engine, rows), strict=True):
                price = _judge_kept(row, state, found)
                if price is not None:
                    paid_orders += 1
                    paid_orders_cents += price
            after = rows[-1]["payment_id"]
        await _unpaid_candidates(pool, engine, sale_id, found)
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        found.add("no order states to audit against (no orders table)")
    captured, refunds_cents, retained = (
        int(totals["captured"]),
        int(totals["refunds"]),
        int(totals["retained"]),
    )
    if paid_orders_cents != captured - refunds_cents - retained:
        found.add(
            f"paid orders {paid_orders_cents} != captured {captured} - refunds "
            f"{refunds_cents} - retained {retained}"
        )
    for violation in await _coins(pool, engine, sale_id):
        found.add(violation)
    for violation in await wallet.audit(pool):
        found.add(violation)
    for violation in await coin_ledger.audit(pool):
        found.add(violation)
    violations = found.all()
    return MoneyAudit(
        sale_id=sale_id,
        ok=not violations,
        violations=violations,
        captured_cents=captured,
        refunds_cents=refunds_cents,
        retained_cents=retained,
        paid_orders_cents=paid_orders_cents,
        paid_orders=paid_orders,
        payments=int(totals["payments"]),
        refunds_pending=int(totals["refunds_pending"]),
        unsettled=int(totals["unsettled"]),
    )
