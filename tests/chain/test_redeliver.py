"""A delivery the deliverer gave up, on a real hardhat node: visible to the operator
(list, gauge, CLI), delivered again when asked, exactly one token minted.

The give-up is real: mints signed with too little gas revert on chain, three times,
and the deliverer gives up (``mint_failed``), the order back to ``paid``. (A node that
is down is not a give-up: deliveries wait for it and resume.)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg
import pytest

from flashsale.chain.addresses import checksummed
from flashsale.devservers.chain import EmbeddedChain
from flashsale.engine.engine import Engine
from tests.api.conftest import bearer
from tests.api.helpers import problem
from tests.chain.helpers import BUYERS, alerts, paid_orders, set_addresses, wait_status
from tests.orders.conftest import app_client

pytestmark = pytest.mark.timeout(120)

ADMIN = bearer("ops-deliveries", admin=True)
TOO_LITTLE_GAS = 25_000  # above a mint's intrinsic gas, far below what it uses


async def _cli(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "FLASHSALE_ENV": "dev", "FLASHSALE_DATABASE_URL": database_url}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flashsale.cli.main", "deliver", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode()


async def test_a_given_up_delivery_is_delivered_again_when_an_operator_asks(
    engine: Engine,
    chain_pool: asyncpg.Pool,
    chain_db: str,
    make_deliverer: Any,
    chain: EmbeddedChain,
    redis_url: str,
    namespace: str,
) -> None:
    (order,) = await paid_orders(engine, chain_pool, "drop", ["u1"])
    await set_addresses(chain_pool, {"u1": BUYERS[0]})
    starved = make_deliverer(mint_gas=TOO_LITTLE_GAS)
    starved.start()
    await wait_status(chain_pool, order.order_id, "failed", timeout_s=60)
    await starved.halt()
    assert "mint_failed" in await alerts(chain_pool)
    got = await engine.get_order(order.order_id)
    assert got is not None and got.status == "paid"  # paid, undelivered: no way out alone
    contract = await chain_pool.fetchval("SELECT contract FROM sale_contracts")
    client = starved.deliverer.client
    assert await client.owner_of(contract, int(order.serial)) is None
    assert starved.deliverer.stats.given_up == 1  # the gauge

    # visible: the CLI and the admin list
    code, out = await _cli(chain_db, "--given-up")
    assert code == 0, out
    (listed,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert listed["order_id"] == order.order_id and listed["attempts"] == 3
    async with app_client(redis_url, namespace, chain_db) as http:
        given_up = await http.get("/v1/admin/deliveries/given-up", headers=ADMIN)
        assert given_up.status_code == 200, given_up.text
        assert [d["order_id"] for d in given_up.json()] == [order.order_id]
        assert given_up.json()[0]["reason"] == "mint reverted"
        assert (
            await http.get("/v1/admin/deliveries/given-up", headers=bearer("u1"))
        ).status_code == 403

        path = f"/v1/admin/orders/{order.order_id}/redeliver"
        asked = await http.post(path, headers=ADMIN)
        assert asked.status_code == 200, asked.text
        assert asked.json() == {"order_id": order.order_id, "status": "queued"}
        # asked twice: the second finds it under way
        problem(await http.post(path, headers=ADMIN), 409, "delivery_not_given_up")
        problem(
            await http.post(f"/v1/admin/orders/{namespace}.{'0' * 20}/redeliver", headers=ADMIN),
            404,
            "delivery_not_found",
        )
        assert (await http.get("/v1/admin/deliveries/given-up", headers=ADMIN)).json() == []

    running = make_deliverer()
    running.start()
    await wait_status(chain_pool, order.order_id, "confirmed")
    assert await client.owner_of(contract, int(order.serial)) == checksummed(BUYERS[0])
    got = await engine.get_order(order.order_id)
    assert got is not None and got.status == "delivered"
    # exactly one mint landed: three reverted, one succeeded
    mints = await chain_pool.fetch(
        "SELECT succeeded FROM chain_txs WHERE order_id = $1 AND status = 'confirmed'"
        " ORDER BY nonce",
        order.order_id,
    )
    assert [m["succeeded"] for m in mints] == [False, False, False, True]
    await running.halt()
    assert running.deliverer.stats.given_up == 0

    # the CLI's own refusal: one line, exit 1
    code, out = await _cli(chain_db, "--retry", order.order_id)
    assert code == 1 and "delivery_not_given_up" in out, out
