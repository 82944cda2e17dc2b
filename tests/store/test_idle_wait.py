"""An idle write-behind blocks on every active sale's stream at once, and an event wakes it.

Its pauses are set far longer than the test may take (a poll every 30 s, a blocking read
of 20 s, no discovery, reclaim or trim for a minute): an order reaches PostgreSQL within
seconds only because the one blocking read over all the sales returns when it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.store.persist import Persister

from .store_helpers import ASLEEP, make_sale, persisted


async def test_an_event_wakes_the_blocked_write_behind_on_any_of_its_sales(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sales = [f"idle{i}-{namespace}" for i in range(3)]
    for sale_id in sales:
        await make_sale(engine, sale_id)
    persister = Persister(engine.redis, pg_pool, namespace=namespace, config=ASLEEP)
    while await persister.step():  # the creation events
        pass
    task = asyncio.create_task(persister.run())
    try:
        for sale_id in (sales[2], sales[0]):  # not only the first stream of the read
            order = (await engine.purchase(sale_id, f"buyer-{sale_id}")).order
            assert await persisted(pg_pool, order.order_id, 10.0), (
                f"the order of {sale_id} waited for the next poll"
            )
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
