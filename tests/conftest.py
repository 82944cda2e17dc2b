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
from flashsale.store import migrate

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


async def pg_admin(pg_admin_url: str, sql: str) -> None:
    """One statement on the server's admin database (CREATE or DROP DATABASE)."""
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def new_database(pg_admin_url: str, prefix: str) -> Iterator[str]:
    """A database created for the block and dropped after it (its URL)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(pg_admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
    base, _, _ = pg_admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(pg_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A database of the suite's own, dropped at the end of the session."""
    with new_database(pg_admin_url, "flashsale_test") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    """The suite's database with every migration applied (idempotent: others may too)."""
    asyncio.run(migrate.upgrade(database_url))
    return database_url


@contextlib.asynccontextmanager
async def pool_on(url: str, max_size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    """A small asyncpg pool on ``url`` for the block."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def own_database_url(pg_admin_url: str) -> Iterator[str]:
    """A database of the test's own: for a server whose deliverer records its local
    chain's genesis, which the next test with a chain of its own must not find."""
    with new_database(pg_admin_url, "flashsale_own") as url:
        yield url


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
