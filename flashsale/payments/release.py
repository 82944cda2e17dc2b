"""What an order of a checkout gives back once it expires, is cancelled or is refunded:
its coins (once), and its open bills, which close (they can no longer be paid whole).

Called by the payment flow right after each of those transitions; every step is
idempotent, so a retried or repeated call changes nothing more.
"""

from __future__ import annotations

import asyncpg

from flashsale.payments import coins
from flashsale.payments.queries import q


async def order_released(pool: asyncpg.Pool, order_id: str, status: str) -> int:
    """The order is ``status`` (expired, cancelled, refunded): coins back, bills closed.

    Returns the coins given back by this call (0 when none, or given back before)."""
    returned = await coins.give_back(pool, order_id, f"order {status}")
    await pool.execute(q("close_bills_of_order"), order_id, f"order {status}")
    return returned
