"""Durability modes: the check sees a fast server, and applies the durable mode."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from flashsale.engine.durability import ensure_durability
from flashsale.settings import ConfigError, Settings

from .servers import PrivateRedis


def test_mode_from_env() -> None:
    assert Settings.from_env({}).durability == "durable"
    assert Settings.from_env({"FLASHSALE_DURABILITY": "fast"}).durability == "fast"
    with pytest.raises(ConfigError, match="FLASHSALE_DURABILITY"):
        Settings.from_env({"FLASHSALE_DURABILITY": "sometimes"})


async def test_durable_mode_is_checked_and_applied() -> None:
    server = PrivateRedis(appendonly=False)
    server.start()
    client = Redis.from_url(server.url)
    try:
        fast = await ensure_durability(client, "fast")
        assert fast.ok and not fast.appendonly
        checked = await ensure_durability(client, "durable")
        assert not checked.ok and checked.problems
        applied = await ensure_durability(client, "durable", apply=True)
        assert applied.ok and applied.changed and applied.appendonly
        assert applied.appendfsync == "always"
        await client.set("k", "v")
        assert server.aof_files(), "AOF files exist once durable"
    finally:
        await client.aclose()
        server.cleanup()


async def test_api_start_up_reports_a_server_short_of_durable_and_waits_for_replicas(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flashsale.connect import replicas_to_wait
    from flashsale.devservers import EmbeddedRedis

    with EmbeddedRedis(appendonly=False) as plain:
        with caplog.at_level("WARNING", logger="flashsale.connect"):
            assert await replicas_to_wait(plain.url, "durable") == 0
        assert "appendonly is no" in caplog.text
    caplog.clear()
    with EmbeddedRedis(appendonly=True, appendfsync="always") as primary:
        with EmbeddedRedis(replica_of=primary):
            deadline = asyncio.get_running_loop().time() + 10
            wait = 0
            while wait == 0 and asyncio.get_running_loop().time() < deadline:
                wait = await replicas_to_wait(primary.url, "durable")
                await asyncio.sleep(0.1)
            assert wait == 1 and "not met" not in caplog.text
