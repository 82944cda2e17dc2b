"""A buyer's order history (#13): from PostgreSQL, newest first (ties by order_id), of one
status or sale, paged with a Link header; without PostgreSQL, the same shape from Redis."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.engine.engine import Engine

from .conftest import bearer
from .helpers import every_page, problem
from .test_admin import ADMIN, _drain

Client = AsyncTestClient[Litestar]


async def _pages(client: Client, first: str, user: str) -> list[list[dict[str, Any]]]:
    return await every_page(client, first, bearer(user))


async def _history(client: Client, namespace: str, user: str) -> tuple[list[str], list[Any]]:
    sales = [f"h-{namespace}-{i}" for i in range(3)]
    for sale_id in sales:
        body = {"sale_id": sale_id, "name": "h", "serials": {"range": [1, 9]}, "per_user_limit": 3}
        assert (await client.post("/v1/sales", json=body, headers=ADMIN)).status_code == 201
    bought = []
    for sale_id in sales:
        for _ in range(2):
            r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(user))
            assert r.status_code == 201, r.text
            bought.append(r.json())
    await client.post("/v1/sales/" + sales[0] + "/purchase", json={}, headers=bearer("other"))
    r = await client.post(f"/v1/orders/{bought[0]['order_id']}/cancel", headers=bearer(user))
    assert r.status_code == 200, r.text
    return sales, bought


def _newest_first(orders: list[dict[str, Any]]) -> list[str]:
    key = sorted(orders, key=lambda o: (o["created_at"], o["order_id"]), reverse=True)
    return [o["order_id"] for o in key]


async def test_history_from_postgres_paged_newest_first(
    db_client: Client, engine: Engine, migrated_database_url: str, namespace: str
) -> None:
    client = db_client
    sales, bought = await _history(client, namespace, "hist")
    await _drain(engine, migrated_database_url, namespace)
    pages = await _pages(client, "/v1/me/orders?limit=4", "hist")
    assert [len(p) for p in pages] == [4, 2]
    got = [o for page in pages for o in page]
    assert [o["order_id"] for o in got] == _newest_first(got)
    assert sorted(o["order_id"] for o in got) == sorted(o["order_id"] for o in bought)
    # by status, by sale; another buyer's orders never show
    r = await client.get("/v1/me/orders?status=cancelled", headers=bearer("hist"))
    assert [o["order_id"] for o in r.json()] == [bought[0]["order_id"]]
    r = await client.get(f"/v1/me/orders?sale_id={sales[1]}&limit=1", headers=bearer("hist"))
    assert len(r.json()) == 1 and r.json()[0]["sale_id"] == sales[1] and "link" in r.headers
    assert (await client.get("/v1/me/orders", headers=bearer("nobody"))).json() == []
    # refusals
    problem(
        await client.get("/v1/me/orders?cursor=bm90LW91cnM", headers=bearer("hist")),
        422,
        "validation_error",
    )
    problem(
        await client.get("/v1/me/orders?status=lost", headers=bearer("hist")),
        400,
        "validation_error",
    )
    problem(
        await client.get("/v1/me/orders?limit=0", headers=bearer("hist")), 400, "validation_error"
    )


async def test_history_without_postgres_has_the_same_shape(
    client: Client, engine: Engine, namespace: str
) -> None:
    _, bought = await _history(client, namespace, "live")
    pages = await _pages(client, "/v1/me/orders?limit=4", "live")
    got = [o for page in pages for o in page]
    assert [len(p) for p in pages] == [4, 2]
    assert [o["order_id"] for o in got] == _newest_first(got)
    r = await client.get("/v1/me/orders?status=cancelled", headers=bearer("live"))
    assert [o["order_id"] for o in r.json()] == [bought[0]["order_id"]]
