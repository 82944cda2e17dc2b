"""Fixtures of the write-behind tests: the suite's database migrated, a pool on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from flashsale.store import migrate


@pytest.fixture(scope="session")
def store_database_url(database_url: str) -> str:
    """The suite's database with every migration applied (idempotent: others may too)."""
    asyncio.run(migrate.upgrade(database_url))
    return database_url


@pytest.fixture
async def pg_pool(store_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(store_database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()
