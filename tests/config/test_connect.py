"""Opening things from the Settings: the pool's timeouts, a missing URL named."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.connect import open_engine, open_pool, open_redis
from flashsale.settings import ConfigError, DatabaseSettings, Settings
from flashsale.store.persist import read_deadline


async def test_pool_honours_the_acquire_and_query_timeouts(pg_admin_url: str) -> None:
    settings = Settings(
        database=DatabaseSettings(url=pg_admin_url, acquire_timeout_s=0.2, query_timeout_s=0.3)
    )
    pool = await open_pool(settings, max_size=1)
    try:
        async with pool.acquire():  # the only connection is taken: the next wait times out
            with pytest.raises(asyncio.TimeoutError):
                await pool.fetchval("SELECT 1")
        with pytest.raises(asyncio.TimeoutError):
            await pool.fetchval("SELECT pg_sleep(5)")
        assert await pool.fetchval("SELECT 1") == 1  # and the pool is fine afterwards
    finally:
        await pool.close()


async def test_a_missing_url_is_named() -> None:
    with pytest.raises(ConfigError, match="FLASHSALE_REDIS_URL is not set"):
        await open_engine(Settings())
    with pytest.raises(ConfigError, match="FLASHSALE_REDIS_URL is not set"):
        await open_redis(Settings())
    with pytest.raises(ConfigError, match="FLASHSALE_DATABASE_URL is not set"):
        await open_pool(Settings())


def test_every_wait_on_postgres_and_the_provider_has_a_deadline_by_default() -> None:
    settings = Settings()
    assert 0 < settings.database.acquire_timeout_s <= 10
    assert 0 < settings.database.query_timeout_s <= 30
    assert 0 < settings.payments.provider_timeout_s <= 10


async def test_the_plain_client_reads_within_the_redis_deadline(redis_url: str) -> None:
    """``open_redis`` (persist, audit) bounds each read by FLASHSALE_REDIS_TIMEOUT_MS: a
    reply that does not come (a frozen server; here a BLPOP of 5 s) fails within it, and
    the write-behind reads the same deadline to keep its blocking reads below it."""
    settings = Settings.from_env(
        {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_REDIS_TIMEOUT_MS": "300"}
    )
    client = await open_redis(settings)
    try:
        assert read_deadline(client) == 0.3
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.blpop([f"never-{time.monotonic_ns()}"], timeout=5)
        assert time.monotonic() - started < 1.5
    finally:
        await client.aclose()
