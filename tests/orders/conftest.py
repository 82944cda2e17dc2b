"""Fixtures of the orders-after-the-drop tests: the real app on real Redis and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.engine.engine import Engine
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.service import PaymentService
from tests.api.conftest import app_settings, bearer
from tests.conftest import pool_on

Client = AsyncTestClient[Litestar]
ADMIN = bearer("ops-orders", admin=True)
PASSWORD = "pay-pass-123"


@pytest.fixture
async def pool(migrated_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with pool_on(migrated_database_url) as pool:
        yield pool


@contextlib.asynccontextmanager
async def app_client(redis_url: str, namespace: str, database_url: str) -> AsyncIterator[Client]:
    """The real app on this Redis namespace and database, through a test client."""
    settings = app_settings(redis_url, namespace, database_url=database_url)
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


@pytest.fixture
async def client(
    redis_url: str, migrated_database_url: str, namespace: str, engine: Engine
) -> AsyncIterator[Client]:
    async with app_client(redis_url, namespace, migrated_database_url) as c:
        yield c


@pytest.fixture
def make_sale(client: Client, namespace: str) -> Callable[..., Any]:
    count = iter(range(1_000_000))

    async def make(**fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sale_id": f"{namespace}-{next(count)}",
            "name": "drop",
            "serials": {"range": [1, 10]},
            "price_cents": 1000,
            "per_user_limit": 5,
        }
        body.update(fields)
        response = await client.post("/v1/sales", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        sale: dict[str, Any] = response.json()
        return sale

    return make


@pytest.fixture
def user(namespace: str) -> Callable[[str], tuple[str, dict[str, str]]]:
    """A buyer id unique to this test, with its bearer header."""

    def make(name: str) -> tuple[str, dict[str, str]]:
        user_id = f"{namespace}-{name}"
        return user_id, bearer(user_id)

    return make


async def credit(
    client: Client, user_id: str, amount_cents: int, *, kind: str = "balance", key: str = ""
) -> dict[str, Any]:
    """Credit a buyer's balance or coins through the admin endpoint."""
    response = await client.post(
        f"/v1/admin/wallets/{user_id}/credit",
        json={"amount_cents": amount_cents, "reason": "test", "kind": kind},
        headers={**ADMIN, "Idempotency-Key": key or f"{user_id}-{kind}-{amount_cents}"},
    )
    assert response.status_code == 200, response.text
    wallet: dict[str, Any] = response.json()
    return wallet


async def wallet(client: Client, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/v1/me/wallet", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sale_counts(client: Client, sale_id: str) -> tuple[int, int, int]:
    sale = (await client.get(f"/v1/sales/{sale_id}")).json()
    return sale["available"], sale["reserved"], sale["sold"]


async def set_password(client: Client, headers: dict[str, str]) -> None:
    response = await client.put(
        "/v1/me/payment-password", json={"password": PASSWORD}, headers=headers
    )
    assert response.status_code == 204, response.text


async def place(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/checkouts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    checkout: dict[str, Any] = response.json()
    return checkout


@pytest.fixture
async def service(pool: asyncpg.Pool, engine: Engine) -> PaymentService:
    """The payment flow on the test's engine and pool, as the timers run it."""
    return PaymentService(pool, engine, {}, bills=BillSettlement)


async def buy_with_balance(
    client: Client, sale_id: str, buyer: str, headers: dict[str, str], credit_cents: int
) -> dict[str, Any]:
    """``buyer`` credited, with a payment password, buys in ``sale_id`` and pays by balance."""
    await credit(client, buyer, credit_cents)
    await set_password(client, headers)
    order: dict[str, Any] = (
        await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=headers)
    ).json()
    paid = await client.post(
        f"/v1/orders/{order['order_id']}/payments",
        json={"method": "balance", "payment_password": PASSWORD},
        headers=headers,
    )
    assert paid.status_code == 201, paid.text
    return order
