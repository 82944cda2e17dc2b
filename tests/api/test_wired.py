"""The API with PostgreSQL: payments wired in, cancel through the payment flow, orders
with their payments, the store's audit joined with the money audit, the store's lag."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.api.state import own_url
from flashsale.devservers import free_port
from flashsale.engine.engine import Engine
from flashsale.store.persist import Persister

from .conftest import app_settings, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]
ADMIN = bearer("ops-7", admin=True)
PASSWORD = {"password": "246810"}


async def _paid_order(client: Client, sale_id: str, user: str) -> dict[str, Any]:
    """Bought and paid from the wallet (no provider needed)."""
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(user))
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    r = await client.put("/v1/me/payment-password", json=PASSWORD, headers=bearer(user))
    assert r.status_code == 204, r.text
    r = await client.post(
        f"/v1/admin/wallets/{user}/credit",
        json={"amount_cents": 990, "reason": "t"},
        headers=ADMIN | {"Idempotency-Key": f"top-up-{order['order_id']}"},
    )
    assert r.status_code == 200, r.text
    pay = {"method": "balance", "payment_password": PASSWORD["password"]}
    r = await client.post(
        f"/v1/orders/{order['order_id']}/payments", json=pay, headers=bearer(user)
    )
    assert r.status_code == 201 and r.json()["status"] == "succeeded", r.text
    return order


async def test_cancel_refund_audit_and_lag_through_the_api(
    db_client: Client, engine: Engine, migrated_database_url: str, namespace: str
) -> None:
    client = db_client
    sale_id = f"w-{namespace}"
    body = {"sale_id": sale_id, "name": "wired", "serials": {"range": [1, 2]}, "price_cents": 990}
    assert (await client.post("/v1/sales", json=body, headers=ADMIN)).status_code == 201

    # a pending order: cancelled through the payment flow, its serial back in the pool
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer("pend"))
    pending = r.json()
    got = await client.get(f"/v1/orders/{pending['order_id']}", headers=bearer("pend"))
    assert got.status_code == 200 and got.json()["payments"] == []
    cancel = f"/v1/orders/{pending['order_id']}/cancel"
    problem(await client.post(cancel, headers=bearer("stranger")), 404, "order_not_found")
    r = await client.post(cancel, headers=bearer("pend"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    body = problem(await client.post(cancel, headers=bearer("pend")), 409, "order_not_pending")
    assert body["order_status"] == "cancelled"

    # a paid order: cancel -> refund_pending (serial still sold) -> approved -> refunded
    order = await _paid_order(client, sale_id, "payer")
    path = f"/v1/orders/{order['order_id']}"
    got = (await client.get(path, headers=bearer("payer"))).json()
    assert got["status"] == "paid"
    assert [(p["method"], p["status"]) for p in got["payments"]] == [("balance", "succeeded")]
    state = client.app.state["app_state"]
    assert state.payments.settings.public_url == own_url({"server": ("testserver.local", 80)})
    r = await client.post(f"{path}/cancel", headers=bearer("payer"))
    assert r.status_code == 200 and r.json()["status"] == "refund_pending", r.text
    # asked again (a retry, by the buyer or ops): the same answer, still one refund
    for who in (bearer("payer"), ADMIN):
        again = await client.post(f"{path}/cancel", headers=who)
        assert again.status_code == 200 and again.json() == r.json(), again.text
    sale = (await client.get(f"/v1/sales/{sale_id}")).json()
    assert (sale["sold"], sale["available"]) == (1, 1)

    # before the write-behind ran: lag, not a violation
    audit = await client.get(f"/v1/sales/{sale_id}/audit", headers=ADMIN)
    assert audit.status_code == 200, audit.text
    report = audit.json()
    assert report["ok"] and report["violations"] == [] and report["lag"] == 2
    assert report["persisted"] == 0 and not report["drained"] and report["money"]["ok"]
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["write_behind_lag"] > 0

    refunds = (await client.get("/v1/admin/refunds?status=pending", headers=ADMIN)).json()
    mine = [r for r in refunds if r["order_id"] == order["order_id"]]
    assert [r["reason"] for r in mine] == ["order_cancelled"]
    r = await client.post(f"/v1/admin/refunds/{mine[0]['refund_id']}/approve", headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "refunded", r.text
    got = (await client.get(path, headers=bearer("payer"))).json()
    assert got["status"] == "refunded"
    wallet = (await client.get("/v1/me/wallet", headers=bearer("payer"))).json()
    assert wallet["balance_cents"] == 990

    pool = await asyncpg.create_pool(migrated_database_url, min_size=1, max_size=2)
    try:
        await Persister(engine.redis, pool, namespace=namespace).drain(timeout_s=30)
        rows = await pool.fetch("SELECT order_id, status FROM orders WHERE sale_id = $1", sale_id)
    finally:
        await pool.close()
    assert {r["order_id"]: r["status"] for r in rows} == {
        pending["order_id"]: "cancelled",
        order["order_id"]: "refunded",
    }
    report = (await client.get(f"/v1/sales/{sale_id}/audit", headers=ADMIN)).json()
    assert report["ok"], report["violations"]
    assert (report["persisted"], report["lag"], report["drained"]) == (2, 0, True)
    assert report["postgres"] == {"cancelled": 1, "refunded": 1}
    assert report["money"]["captured_cents"] == 990 and report["money"]["refunds_cents"] == 990
    quick = (await client.get(f"/v1/sales/{sale_id}/audit?quick=true", headers=ADMIN)).json()
    assert quick["ok"] and not quick["deep"] and quick["lag"] == 0
    assert (await client.get("/health")).json()["write_behind_lag"] == 0
    metrics = (await client.get("/metrics")).text
    assert f'flashsale_stream_lag{{sale_id="{sale_id}"}} 0.0' in metrics
    problem(await client.get("/v1/sales/nope/audit", headers=ADMIN), 404, "sale_not_found")
    # text PostgreSQL cannot store is refused up front, never a 500
    nul = await client.post(
        f"/v1/admin/refunds/{mine[0]['refund_id']}/reject", json={"note": "a\x00b"}, headers=ADMIN
    )
    problem(nul, 422, "validation_error")  # refused at the edge (api/text.py)
    credit = {"amount_cents": 1, "reason": "x"}
    nul = await client.post("/v1/admin/wallets/a%00b/credit", json=credit, headers=ADMIN)
    problem(nul, 422, "validation_error")


async def test_postgres_down_orders_still_sell_and_reads_answer_503(
    redis_url: str, namespace: str, engine: Engine
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    settings = app_settings(redis_url, namespace, database_url=dead)
    async with AsyncTestClient(app=create_app(settings)) as client:
        sale = {"sale_id": "pgdown", "name": "x", "serials": {"range": [1, 2]}}
        assert (await client.post("/v1/sales", json=sale, headers=ADMIN)).status_code == 201
        r = await client.post("/v1/sales/pgdown/purchase", json={}, headers=bearer("u"))
        assert r.status_code == 201  # Redis is the authority: selling goes on
        got = await client.get(f"/v1/orders/{r.json()['order_id']}", headers=bearer("u"))
        problem(got, 503, "database_unavailable")
        assert got.headers["retry-after"] == "1"


def test_own_url_is_the_socket_not_the_host_header() -> None:
    assert own_url({"server": ("127.0.0.1", 8000), "scheme": "http"}) == "http://127.0.0.1:8000"
    assert own_url({"server": ("::1", 443), "scheme": "https"}) == "https://[::1]:443"
    assert own_url({"server": ("/run/app.sock", None)}) is None
    assert own_url({"headers": [(b"host", b"evil.example")]}) is None
