"""Sales carry a merchant: given at creation (default platform), read back, persisted."""

from __future__ import annotations

from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.store.persist import PersistConfig, Persister

from .conftest import ADMIN, Client


async def test_merchant_is_kept_read_back_and_persisted(
    client: Client, make_sale: Any, engine: Engine, pool: asyncpg.Pool, namespace: str
) -> None:
    studio = await make_sale(merchant_id="studio-a")
    plain = await make_sale()
    assert studio["merchant_id"] == "studio-a"
    assert plain["merchant_id"] == "platform"
    read = (await client.get(f"/v1/sales/{studio['sale_id']}")).json()
    assert read["merchant_id"] == "studio-a"
    persister = Persister(engine.redis, pool, namespace=namespace, config=PersistConfig())
    await persister.drain(timeout_s=30)
    rows = await pool.fetch(
        "SELECT sale_id, merchant_id FROM sales WHERE sale_id = ANY($1::text[])",
        [studio["sale_id"], plain["sale_id"]],
    )
    assert {r["sale_id"]: r["merchant_id"] for r in rows} == {
        studio["sale_id"]: "studio-a",
        plain["sale_id"]: "platform",
    }


async def test_a_bad_merchant_is_refused(client: Client) -> None:
    body = {"name": "x", "serials": {"range": [1, 2]}, "merchant_id": "no spaces"}
    response = await client.post("/v1/sales", json=body, headers=ADMIN)
    assert response.status_code in (400, 422)
    assert response.json()["code"] == "validation_error"
