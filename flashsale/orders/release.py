"""What an order of a checkout gives back once it expires, is cancelled or is refunded:
its coins (once), and its open bills, which close (they can no longer be paid whole).

Called by the payment flow right after each of those transitions; every step is
idempotent, so a retried or repeated call changes nothing more. Should that call not
run (PostgreSQL gone between the order's move in Redis and it), the timers' ``repair``
finds the order within a minute or two.
"""

from __future__ import annotations

import asyncpg

from flashsale.engine import statuses
from flashsale.engine.engine import Engine
from flashsale.orders import coins
from flashsale.orders.queries import q

RECHECK_S = 60.0  # how long an unsettled order's coins wait before the next look


async def order_released(pool: asyncpg.Pool, order_id: str, status: str) -> int:
    """The order is ``status`` (expired, cancelled, refunded): coins back, bills closed.

    Returns the coins given back by this call (0 when none, or given back before)."""
    returned = await coins.give_back(pool, order_id, f"order {status}")
    await pool.execute(q("close_bills_of_order"), order_id, f"order {status}")
    return returned


async def repair(pool: asyncpg.Pool, engine: Engine, limit: int) -> int:
    """The timers' look at orders whose coins are neither given back nor kept: a released
    one gets them back now (its give-back did not run), a paid one keeps them for good
    (a later refund gives them back through the refund flow). Returns how many were seen."""
    rows = await pool.fetch(q("claim_unsettled_coins"), limit, RECHECK_S)
    for row in rows:
        order = await engine.get_order(row["order_id"])
        if order is None:
            continue
        if order.status in statuses.RELEASED:
            await order_released(pool, order.order_id, order.status)
        elif order.status in statuses.PAID:
            await pool.execute(q("mark_coins_settled"), order.order_id)
    return len(rows)
