"""A real process that cancels a paid order, for the repair tests (test_repairs.py).

``python -m tests.payments.crash_child REDIS_URL NAMESPACE DATABASE_URL ORDER_ID USER_ID``,
run with ``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=<point>``: it kills itself (SIGKILL) at that
point of the cancellation, as a crash between the two steps would. Prints ``finished``
when it was not armed.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.payments.service import PaymentService, PaymentSettings


async def main(redis_url: str, namespace: str, database_url: str, order_id: str, user: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    service = PaymentService(pool, engine, {}, PaymentSettings())
    order = await service.cancel_order(order_id, user)
    print("finished", order.status, flush=True)
    await pool.close()
    await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
