"""A real process that approves an after-sales ticket, for the crash test
(test_aftersales.py).

``python -m tests.chain.approve_child REDIS_URL NAMESPACE DATABASE_URL TICKET_ID``, run with
``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=aftersales.refund_opened``: it kills itself (SIGKILL)
between opening the ticket's refund and approving it.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.orders.aftersales import AfterSales
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.service import PaymentService


async def main(redis_url: str, namespace: str, database_url: str, ticket_id: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    service = PaymentService(pool, engine, {}, bills=BillSettlement)
    ticket = await AfterSales(service).approve(ticket_id, "ops-child", None)
    print("finished", ticket.status, flush=True)
    await pool.close()
    await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
