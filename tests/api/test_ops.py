"""Health, metrics, audit, OpenAPI, and the answers when Redis is away."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.devservers import free_port

from .conftest import app_settings, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]


async def test_health_ok_with_postgres(
    redis_url: str, database_url: str, namespace: str, engine: Any
) -> None:
    settings = app_settings(redis_url, namespace, database_url=database_url)
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] and body["postgres"]["ok"]
    assert body["write_behind_lag"] == 0


async def test_health_degraded_when_postgres_is_down(
    redis_url: str, namespace: str, engine: Any
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    settings = app_settings(redis_url, namespace, database_url=dead)
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded" and not r.json()["postgres"]["ok"]
    assert r.json()["redis"]["ok"]


async def test_redis_down_is_503_engine_unavailable(namespace: str) -> None:
    settings = app_settings(f"redis://127.0.0.1:{free_port()}/0", namespace)
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.post("/v1/sales/any/purchase", json={}, headers=bearer("u"))
        problem(r, 503, "engine_unavailable")
        assert r.headers["retry-after"] == "1"
        health = await client.get("/health")
        assert health.status_code == 503 and not health.json()["redis"]["ok"]


async def test_metrics(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="m1", serials={"range": [1, 1]})
    await client.post("/v1/sales/m1/purchase", json={}, headers=buyer("a"))
    await client.post("/v1/sales/m1/purchase", json={}, headers=buyer("b"))  # sold out (Redis)
    await client.post("/v1/sales/m1/purchase", json={}, headers=buyer("c"))  # sold out (memory)
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'flashsale_purchases_total{outcome="created"}' in text
    assert 'flashsale_purchases_total{outcome="sold_out"}' in text
    assert "flashsale_sold_out_short_circuit_total" in text
    assert "flashsale_purchase_seconds_bucket" in text
    # no write-behind runs here: the sale's whole stream (creation, one purchase) lags
    assert 'flashsale_stream_lag{sale_id="m1"} 2.0' in text
    assert 'flashsale_stream_lag_oldest_age_seconds{sale_id="m1"}' in text
    assert "flashsale_write_behind_lag 2.0" in text


async def test_audit_requires_admin_and_a_sale(
    client: Client, make_sale: Any, admin: dict[str, str]
) -> None:
    await make_sale(sale_id="a1")
    problem(await client.get("/v1/sales/a1/audit"), 401, "unauthenticated")
    problem(await client.get("/v1/sales/none/audit", headers=admin), 404, "sale_not_found")
    # this app runs without PostgreSQL: nothing to audit against (test_wired.py has one)
    r = await client.get("/v1/sales/a1/audit", headers=admin)
    problem(r, 503, "audit_unavailable")


async def test_openapi_and_errors_from_the_framework(client: Client) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    paths = schema["paths"]
    for path, method in [
        ("/v1/sales", "post"),
        ("/v1/sales/{sale_id}", "get"),
        ("/v1/sales/{sale_id}", "patch"),
        ("/v1/sales/{sale_id}/purchase", "post"),
        ("/v1/orders/{order_id}", "get"),
        ("/v1/me/orders", "get"),
        ("/v1/orders/{order_id}/cancel", "post"),
        ("/v1/sales/{sale_id}/audit", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], (path, method)
    purchase = paths["/v1/sales/{sale_id}/purchase"]["post"]
    assert "application/problem+json" in purchase["responses"]["409"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in purchase["parameters"])
    problem(await client.get("/no/such/path"), 404, "not_found")
    problem(await client.delete("/health"), 405, "method_not_allowed")
