"""Durability modes: the check sees a fast server, and applies the durable mode."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from flashsale.store.durability import ensure_durability, mode_from_env

from .servers import PrivateRedis


def test_mode_from_env() -> None:
    assert mode_from_env({}) == "durable"
    assert mode_from_env({"FLASHSALE_DURABILITY": "fast"}) == "fast"
    with pytest.raises(ValueError):
        mode_from_env({"FLASHSALE_DURABILITY": "sometimes"})


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
