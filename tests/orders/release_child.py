"""A real process that releases an order of a checkout, for the repair tests
(test_release_repair.py).

``python -m tests.orders.release_child REDIS_URL NAMESPACE DATABASE_URL ORDER_ID USER_ID
expire|cancel``, run with ``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=<point>``: it kills itself
(SIGKILL) there, as a crash between the Redis transition and the coins' return would.
Prints the outcome when it was not armed.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.service import PaymentService


async def main(
    redis_url: str, namespace: str, database_url: str, order_id: str, user: str, action: str
) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    service = PaymentService(pool, engine, {}, bills=BillSettlement)
    if action == "expire":
        print("finished", await service.expire_order(order_id), flush=True)
    else:
        print("finished", (await service.cancel_order(order_id, user)).status, flush=True)
    await pool.close()
    await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
