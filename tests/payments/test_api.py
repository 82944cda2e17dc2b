"""The payment routes through the real app, wired by the API's plugin."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.api.tokens import mint_token
from flashsale.engine.engine import Engine
from flashsale.payments import signing
from flashsale.settings import (
    ApiSettings,
    DatabaseSettings,
    PaymentsSettings,
    RedisSettings,
    Settings,
)
from tests.paysim.paysim_harness import PaysimProcess

from .conftest import SECRET

JWT = "payments-flow-jwt-secret-0123456789abcdef"


def bearer(user: str, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT, user, admin=admin)}"}


ADMIN = bearer("ops-9", admin=True)


@pytest.fixture
async def client(
    redis_url: str, payments_db: str, namespace: str, paysim: PaysimProcess, engine: Engine
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        jwt_secret=JWT,
        redis=RedisSettings(url=redis_url, namespace=namespace),
        database=DatabaseSettings(url=payments_db),
        payments=PaymentsSettings(paysim_url=paysim.url, paysim_secret=SECRET),
        api=ApiSettings(public_url="http://127.0.0.1:9"),  # the test posts the callbacks
    )
    app: Litestar = create_app(settings)
    async with AsyncTestClient(app=app) as c:
        yield c


async def _sale(client: AsyncTestClient[Litestar], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "api pay", "serials": {"range": [1, 5]}, "price_cents": 1200}
    body.update(fields)
    response = await client.post("/v1/sales", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    sale: dict[str, Any] = response.json()
    return sale


async def _buy(client: AsyncTestClient[Litestar], sale_id: str, user: str) -> dict[str, Any]:
    response = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(user))
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def _signed(payment: dict[str, Any], **overrides: Any) -> tuple[bytes, dict[str, str]]:
    body = {
        "notify_id": f"ntf_api_{payment['payment_id']}",
        "trade_no": payment["provider_trade_no"],
        "out_trade_no": payment["payment_id"],
        "order_id": payment["order_id"],
        "status": "succeeded",
        "amount_cents": payment["amount_cents"],
        "currency": "CNY",
        "paid_at": datetime.now(UTC).isoformat(),
        "notify_time": datetime.now(UTC).isoformat(),
        **overrides,
    }
    raw = msgspec.json.encode(body)
    return raw, {signing.SIGNATURE_HEADER: signing.sign(raw, SECRET, int(time.time()))}


async def test_provider_payment_and_its_callback_over_http(
    client: AsyncTestClient[Litestar],
) -> None:
    sale = await _sale(client)
    order = await _buy(client, sale["sale_id"], "web1")
    path = f"/v1/orders/{order['order_id']}/payments"
    started = await client.post(
        path, json={"method": "provider", "provider": "sim"}, headers=bearer("web1")
    )
    assert started.status_code == 201, started.text
    payment = started.json()
    assert {k: payment[k] for k in ("order_id", "method", "status", "amount_cents")} == {
        "order_id": order["order_id"],
        "method": "provider",
        "status": "pending",
        "amount_cents": 1200,
    }
    assert payment["payment_id"] and payment["provider_trade_no"] and payment["pay_url"]
    other = await client.post(
        path, json={"method": "provider", "provider": "sim"}, headers=bearer("web2")
    )
    assert other.status_code == 404 and other.json()["code"] == "order_not_found"

    raw, headers = _signed(payment)
    forged = await client.post(
        "/v1/payments/callbacks/sim",
        content=raw,
        headers={signing.SIGNATURE_HEADER: signing.sign(raw, "wrong", int(time.time()))},
    )
    assert forged.status_code == 401
    ok = await client.post("/v1/payments/callbacks/sim", content=raw, headers=headers)
    assert ok.status_code == 200
    # the same signed callback again is a redelivery: 200, nothing changes
    replay = await client.post("/v1/payments/callbacks/sim", content=raw, headers=headers)
    assert replay.status_code == 200 and replay.json()["result"] == "duplicate", replay.text
    got = await client.get(f"/v1/orders/{order['order_id']}", headers=bearer("web1"))
    assert got.json()["status"] == "paid"
    listed = await client.get(path, headers=bearer("web1"))
    assert [p["status"] for p in listed.json()] == ["succeeded"]
    again = await client.post(
        path, json={"method": "provider", "provider": "sim"}, headers=bearer("web1")
    )
    assert again.status_code == 409 and again.json()["code"] == "order_not_payable"


async def test_balance_password_wallet_and_refund_review_over_http(
    client: AsyncTestClient[Litestar],
) -> None:
    sale = await _sale(client)
    order = await _buy(client, sale["sale_id"], "web3")
    path = f"/v1/orders/{order['order_id']}/payments"
    pay = {"method": "balance", "payment_password": "112233"}
    not_set = await client.post(path, json=pay, headers=bearer("web3"))
    assert not_set.status_code == 409 and not_set.json()["code"] == "payment_password_not_set"
    put = await client.put(
        "/v1/me/payment-password", json={"password": "112233"}, headers=bearer("web3")
    )
    assert put.status_code == 204
    poor = await client.post(path, json=pay, headers=bearer("web3"))
    assert poor.status_code == 409 and poor.json()["code"] == "insufficient_balance"
    forbidden = await client.post(
        "/v1/admin/wallets/web3/credit",
        json={"amount_cents": 5000, "reason": "x"},
        headers=bearer("web3"),
    )
    assert forbidden.status_code == 403
    promo = {"amount_cents": 5000, "reason": "promo"}
    unkeyed = await client.post("/v1/admin/wallets/web3/credit", json=promo, headers=ADMIN)
    assert unkeyed.status_code == 428 and unkeyed.json()["code"] == "idempotency_key_required"
    keyed = ADMIN | {"Idempotency-Key": "promo-web3"}
    for _ in range(2):  # a retry after a lost answer credits once
        credited = await client.post("/v1/admin/wallets/web3/credit", json=promo, headers=keyed)
        assert credited.status_code == 200 and credited.json()["balance_cents"] == 5000
    reused = await client.post(
        "/v1/admin/wallets/web3/credit", json={**promo, "amount_cents": 1}, headers=keyed
    )
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    wrong = await client.post(
        path, json={**pay, "payment_password": "999999"}, headers=bearer("web3")
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "payment_password_wrong"
    assert wrong.json()["attempts_left"] == 4
    paid = await client.post(path, json=pay, headers=bearer("web3"))
    assert paid.status_code == 201 and paid.json()["status"] == "succeeded"
    wallet = (await client.get("/v1/me/wallet", headers=bearer("web3"))).json()
    assert wallet["balance_cents"] == 3800 and wallet["currency"] == "CNY"
    assert [e["kind"] for e in wallet["entries"]] == ["debit", "credit"]

    # A second, provider payment of the paid order arrives: refund for review.
    order2 = await _buy(client, sale["sale_id"], "web4")
    p1 = (
        await client.post(
            f"/v1/orders/{order2['order_id']}/payments",
            json={"method": "provider", "provider": "sim"},
            headers=bearer("web4"),
        )
    ).json()
    p2 = (
        await client.post(
            f"/v1/orders/{order2['order_id']}/payments",
            json={"method": "provider", "provider": "sim"},
            headers=bearer("web4"),
        )
    ).json()
    for p in (p1, p2):
        raw, headers = _signed(p)
        assert (
            await client.post("/v1/payments/callbacks/sim", content=raw, headers=headers)
        ).status_code == 200
    refunds = (await client.get("/v1/admin/refunds?status=pending", headers=ADMIN)).json()
    mine = [r for r in refunds if r["order_id"] == order2["order_id"]]
    assert len(mine) == 1 and mine[0]["reason"] == "duplicate_payment"
    assert set(mine[0]) >= {
        "refund_id",
        "order_id",
        "payment_id",
        "amount_cents",
        "reason",
        "status",
        "created_at",
    }
    rid = mine[0]["refund_id"]
    assert (await client.get("/v1/admin/refunds", headers=bearer("web4"))).status_code == 403
    rejected = await client.post(f"/v1/admin/refunds/{rid}/reject", headers=ADMIN)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    same = await client.post(f"/v1/admin/refunds/{rid}/reject", headers=ADMIN)
    assert same.status_code == 200 and same.json() == rejected.json()
    other = await client.post(f"/v1/admin/refunds/{rid}/approve", headers=ADMIN)
    assert other.status_code == 409 and other.json()["code"] == "refund_already_decided"
    missing = await client.post("/v1/admin/refunds/rf_nope/approve", headers=ADMIN)
    assert missing.status_code == 404
