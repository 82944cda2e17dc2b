from __future__ import annotations

import asyncpg

from flashsale.chain.rpc import ChainClient
from flashsale.engine.engine import Engine
from tests.chain.helpers import BUYERS, eventually, paid_orders, set_addresses, statuses


async def test_smoke(engine: Engine, chain_pool: asyncpg.Pool, make_deliverer) -> None:
    orders = await paid_orders(engine, chain_pool, "drop1", ["u1", "u2"])
    await set_addresses(chain_pool, {"u1": BUYERS[0], "u2": BUYERS[1]})
    running = make_deliverer()
    running.start()

    async def done() -> bool:
        assert running.task is not None
        if running.task.done():
            running.task.result()
        print(await statuses(chain_pool))
        return (await statuses(chain_pool)).get("confirmed") == 2

    await eventually(done, 30)
    client: ChainClient = running.deliverer.client
    contract = await chain_pool.fetchval("SELECT contract FROM sale_contracts")
    for order, buyer in zip(orders, BUYERS, strict=False):
        assert await client.owner_of(contract, int(order.serial)) == buyer
