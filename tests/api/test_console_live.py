"""The console's page and assets, and its live view endpoint, through the test client
(the browser's own test is test_console.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from .conftest import bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]


async def test_the_page_and_its_assets_come_from_the_app(client: Client) -> None:
    page = await client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("console.js", "console.css"):
        assert f"/console/assets/{asset}" in page.text
        r = await client.get(f"/console/assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 1000
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another host
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/console" not in schema["paths"]
    assert "/v1/admin/sales/{sale_id}/live" in schema["paths"]


async def test_live_view_counts_purchases_and_refusals(
    client: Client, make_sale: Any, buyer: Any, admin: dict[str, str]
) -> None:
    await make_sale(sale_id="live1", serials={"range": [1, 3]})
    for user in ("a", "b", "a"):  # the third: limit_reached
        await client.post("/v1/sales/live1/purchase", json={}, headers=buyer(user))
    state = client.app.state["app_state"]
    await state.stats.flush()  # the workers add their counts to Redis once a second
    problem(await client.get("/v1/admin/sales/live1/live"), 401, "unauthenticated")
    problem(await client.get("/v1/admin/sales/live1/live", headers=buyer("a")), 403, "forbidden")
    problem(await client.get("/v1/admin/sales/nope/live", headers=admin), 404, "sale_not_found")
    r = await client.get("/v1/admin/sales/live1/live", headers=admin)
    assert r.status_code == 200, r.text
    live = r.json()
    assert (live["sale"]["available"], live["sale"]["reserved"]) == (1, 2)
    assert live["purchases"] == 2 and live["refusals"] == {"limit_reached": 1}
    assert live["lag"] == 3 and live["lag_oldest_age_s"] >= 0  # no write-behind runs here
    assert live["deliveries_waiting"] is None  # this app runs without PostgreSQL


async def test_live_view_counts_deliveries_waiting(
    db_client: Client, namespace: str, migrated_database_url: str
) -> None:
    admin = bearer("ops", admin=True)
    sale_id = f"lv-{namespace}"
    body = {"sale_id": sale_id, "name": "live", "serials": {"range": [1, 2]}}
    assert (await db_client.post("/v1/sales", json=body, headers=admin)).status_code == 201
    r = await db_client.get(f"/v1/admin/sales/{sale_id}/live", headers=admin)
    assert r.json()["deliveries_waiting"] == {"awaiting_address": 0, "queued": 0, "submitted": 0}
    conn = await asyncpg.connect(migrated_database_url)
    try:  # a paid order whose buyer has no chain address yet, as the deliverer records it
        await conn.execute(
            "INSERT INTO deliveries (order_id, sale_id, user_id, token_id, status) "
            "VALUES ($1, $2, 'u', 1, 'awaiting_address')",
            f"{sale_id}.x1",
            sale_id,
        )
        r = await db_client.get(f"/v1/admin/sales/{sale_id}/live", headers=admin)
        assert r.json()["deliveries_waiting"]["awaiting_address"] == 1
    finally:
        await conn.execute("DELETE FROM deliveries WHERE sale_id = $1", sale_id)
        await conn.close()
