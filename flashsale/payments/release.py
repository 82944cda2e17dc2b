"""What an order of a checkout gives back once it expires, is cancelled or is refunded:
its coins (once), and its open bills, which close (they can no longer be paid whole).

Called by the payment flow right after each of those transitions; every step is
idempotent, so a retried or repeated call changes nothing more.

A crash between the Redis transition and this call would leave the coins kept and
the bills open, so the intent is written first (``note_release``, on the order's
``checkout_orders`` row) and ``order_released`` clears it; the timers finish every
intent older than a few seconds (``finish_stalled_releases``). A refund needs no
intent of its own: its refund row is one, finished by ``Refunds.retry_due``.
"""

from __future__ import annotations

import asyncpg

from flashsale.crashpoints import crash_point
from flashsale.engine import statuses
from flashsale.engine.engine import Engine
from flashsale.payments import coins
from flashsale.payments.queries import q


async def note_release(pool: asyncpg.Pool, order_id: str) -> None:
    """Before a transition that may release the order (a no-op outside checkouts)."""
    await pool.execute(q("note_release"), order_id)


async def order_released(pool: asyncpg.Pool, order_id: str, status: str) -> int:
    """The order is ``status`` (expired, cancelled, refunded): coins back, bills closed.

    Returns the coins given back by this call (0 when none, or given back before)."""
    crash_point("release.before_give_back")
    returned = await coins.give_back(pool, order_id, f"order {status}")
    await pool.execute(q("close_bills_of_order"), order_id, f"order {status}")
    return returned


async def finish_stalled_releases(
    pool: asyncpg.Pool, engine: Engine, limit: int, older_than_s: float
) -> int:
    """The timers' repair: releases a crash cut; how many were given back by it.

    An order Redis shows released gets its coins and bill closing now (exactly once:
    both are idempotent); any other status means the transition did not happen (or a
    payment won): the intent is dropped."""
    repaired = 0
    for row in await pool.fetch(q("claim_stalled_releases"), limit, older_than_s):
        order = await engine.get_order(row["order_id"])
        if order is not None and order.status in statuses.RELEASED:
            await order_released(pool, order.order_id, order.status)
            repaired += 1
        else:
            await pool.execute(q("clear_release"), row["order_id"])
    return repaired
