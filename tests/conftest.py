"""Shared fixtures: a real Redis and a real PostgreSQL, never fakes.

CI (and anyone with services running) points the suite at them with
FLASHSALE_TEST_REDIS_URL and FLASHSALE_TEST_DATABASE_URL (an admin URL: the
suite creates its own database and drops it afterwards). With neither set,
private embedded servers are started for the session. A service that is set
but does not answer fails the tests; it never skips them.

Every test gets its own key namespace, deleted afterwards, so the suite never
touches data it did not create, even on a shared Redis.

The suite runs in dev mode (FLASHSALE_ENV=dev, inherited by every process it
starts): development secrets apply where a test sets none. The tests of the
secrets rule set FLASHSALE_ENV themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from flashsale.engine.engine import Engine
from flashsale.engine.transport import TransportOptions

os.environ["FLASHSALE_ENV"] = "dev"


@pytest.fixture(scope="session")
def _embedded() -> Iterator[tuple[str, str] | None]:
    if os.environ.get("FLASHSALE_TEST_REDIS_URL") and os.environ.get("FLASHSALE_TEST_DATABASE_URL"):
        yield None
        return
    from flashsale.devservers import embedded_stack

    with embedded_stack() as urls:
        yield urls


@pytest.fixture(scope="session")
def redis_url(_embedded: tuple[str, str] | None) -> str:
    url = os.environ.get("FLASHSALE_TEST_REDIS_URL") or (_embedded and _embedded[0])
    assert url, "no Redis for the tests"
    return url


@pytest.fixture(scope="session")
def pg_admin_url(_embedded: tuple[str, str] | None) -> str:
    url = os.environ.get("FLASHSALE_TEST_DATABASE_URL") or (_embedded and _embedded[1])
    assert url, "no PostgreSQL for the tests"
    return url


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A database of the suite's own, dropped at the end of the session."""
    name = f"flashsale_test_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = pg_admin_url.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def namespace() -> str:
    return f"t{secrets.token_hex(5)}"


async def delete_namespace(redis_url: str, namespace: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


@pytest.fixture
async def engine(redis_url: str, namespace: str) -> AsyncIterator[Engine]:
    # A patient deadline: these tests are about outcomes, not speed, and share a busy
    # machine; the deadlines themselves are tested with engines of their own.
    eng = Engine.from_url(
        redis_url,
        namespace=namespace,
        max_connections=16,
        transport=TransportOptions(timeout_ms=30_000),
    )
    await eng.redis.ping()  # fail, not skip, when Redis is missing
    try:
        yield eng
    finally:
        with contextlib.suppress(Exception):
            await eng.aclose()
        await delete_namespace(redis_url, namespace)
