"""API fixtures: the real app over the real Redis, through Litestar's AsyncTestClient."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.api.tokens import mint_token
from flashsale.engine.engine import Engine
from flashsale.settings import ApiSettings, DatabaseSettings, RedisSettings, Settings

SECRET = "test-secret-for-the-api-suite-0123456789"


def app_settings(
    redis_url: str, namespace: str, *, database_url: str | None = None, **api: Any
) -> Settings:
    """The API's settings for a test: its Redis namespace, the suite's JWT secret."""
    return Settings(
        jwt_secret=SECRET,
        redis=RedisSettings(url=redis_url, namespace=namespace),
        database=DatabaseSettings(url=database_url),
        api=ApiSettings(**api),
    )


@pytest.fixture
async def db_client(
    redis_url: str, migrated_database_url: str, namespace: str, engine: Engine
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app with PostgreSQL (payments, audit, admin listings) on the migrated database."""
    settings = app_settings(redis_url, namespace, database_url=migrated_database_url)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    return app_settings(redis_url, namespace, bench_endpoints=True)


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Litestar:
    # AsyncTestClient runs the app in an event loop of its own (a portal thread): the app
    # opens its own engine there; the test's `engine` (same namespace) checks state directly
    # and deletes the namespace afterwards.
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as c:
        yield c


def bearer(
    user: str, *, admin: bool = False, secret: str = SECRET, ttl_s: int = 3600
) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(secret, user, admin=admin, ttl_s=ttl_s)}"}


@pytest.fixture
def admin() -> dict[str, str]:
    return bearer("ops-1", admin=True)


@pytest.fixture
def buyer() -> Callable[[str], dict[str, str]]:
    return lambda user: bearer(user)


@pytest.fixture
def make_sale(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> Callable[..., Any]:
    async def make(**fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "Genesis drop", "serials": {"range": [1, 10]}}
        body.update(fields)
        response = await client.post("/v1/sales", json=body, headers=admin)
        assert response.status_code == 201, response.text
        sale: dict[str, Any] = response.json()
        return sale

    return make
