"""Fixtures of the write-behind tests: a pool on the suite's migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from ..conftest import pool_on


@pytest.fixture
async def pg_pool(migrated_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with pool_on(migrated_database_url) as pool:
        yield pool
