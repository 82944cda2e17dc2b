"""Delivery over HTTP: a buyer's address, the order's delivery, the sale's contract."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.engine.engine import Engine
from tests.api.conftest import app_settings, bearer
from tests.chain.helpers import BUYERS, paid_orders, wait_status

CHECKSUMMED = BUYERS[0]  # 0x70997970C51812dc3A010C7d01b50e0d17dc79C8


async def test_addresses_and_deliveries_over_http(
    engine: Engine,
    chain_db: str,
    chain_pool: asyncpg.Pool,
    redis_url: str,
    namespace: str,
    make_deliverer: Any,
) -> None:
    (order,) = await paid_orders(engine, chain_pool, "drop", ["u1"])
    app = create_app(app_settings(redis_url, namespace, database_url=chain_db))
    async with AsyncTestClient(app=app) as http:
        url = "/v1/me/chain-address"
        i = next(i for i, c in enumerate(CHECKSUMMED) if i > 1 and c.isalpha())
        wrong_checksum = CHECKSUMMED[:i] + CHECKSUMMED[i].swapcase() + CHECKSUMMED[i + 1 :]
        for bad in (wrong_checksum, "0x1234", "70997970c51812dc3a010c7d01b50e0d17dc79c8",
                    "0x" + "0" * 40, "0x" + "g" * 40):  # fmt: skip
            answer = await http.put(url, json={"address": bad}, headers=bearer("u1"))
            assert answer.status_code == 422, bad
            assert answer.json()["code"] == "validation_error"
        assert (await http.put(url, json={"address": CHECKSUMMED})).status_code == 401
        assert await chain_pool.fetchval("SELECT count(*) FROM chain_addresses") == 0

        got = await http.get(f"/v1/orders/{order.order_id}", headers=bearer("u1"))
        assert got.json()["delivery"] == {
            "status": "awaiting_address",
            "address": None,
            "token_id": str(order.serial),
            "tx_hash": None,
            "confirmations": 0,
        }
        answer = await http.put(url, json={"address": CHECKSUMMED.lower()}, headers=bearer("u1"))
        assert answer.status_code == 204
        stored = await chain_pool.fetchval("SELECT address FROM chain_addresses")
        assert stored == CHECKSUMMED  # returned and kept in EIP-55 form
        assert "chain" not in (await http.get("/v1/sales/drop")).json()

        running = make_deliverer()
        running.start()
        await wait_status(chain_pool, order.order_id, "confirmed")
        delivery = (await http.get(f"/v1/orders/{order.order_id}", headers=bearer("u1"))).json()[
            "delivery"
        ]
        assert delivery["status"] == "confirmed" and delivery["address"] == CHECKSUMMED
        assert delivery["tx_hash"].startswith("0x") and delivery["confirmations"] >= 2
        sale = (await http.get("/v1/sales/drop")).json()
        contract = await chain_pool.fetchval("SELECT contract FROM sale_contracts")
        assert sale["chain"] == {"chain_id": 31337, "contract": contract}
