"""Durability modes: the check sees a fast server and applies the durable mode; in durable
mode a replica must be guarded (min-replicas-to-write), checked at start and on every new
hot-path connection."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from typing import Any

import pytest
from redis.asyncio import Redis

from flashsale.connect import open_engine, verify_durability
from flashsale.devservers import EmbeddedRedis, free_port
from flashsale.engine.durability import ensure_durability
from flashsale.engine.errors import EngineUnavailable
from flashsale.settings import ConfigError, RedisSettings, Settings

from .servers import PrivateRedis
from .store_helpers import make_sale


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


async def test_start_up_warns_of_a_server_short_of_aof(caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddedRedis(appendonly=False) as plain:
        with caplog.at_level("WARNING", logger="flashsale.connect"):
            await verify_durability(_durable(plain.url))
        assert "appendonly is no" in caplog.text


async def test_durable_mode_refuses_to_start_on_a_replica_without_min_replicas() -> None:
    """Redis would take writes its replica may miss: every process that writes refuses
    to start, one line naming the settings (exit 2 from the commands)."""
    with EmbeddedRedis() as primary, EmbeddedRedis(replica_of=primary) as replica:
        replica.wait_in_sync()
        with pytest.raises(ConfigError, match="min-replicas-to-write") as refused:
            await open_engine(_durable(primary.url))
        assert "FLASHSALE_DURABILITY" in str(refused.value)
        assert "\n" not in str(refused.value)
        fast = await open_engine(_durable(primary.url, durability="fast"))
        await fast.aclose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        env |= {"FLASHSALE_ENV": "dev", "FLASHSALE_REDIS_URL": primary.url}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "flashsale.cli.main", "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("flashsale:")]
        assert len(lines) == 1 and "min-replicas-max-lag" in lines[0], done.stderr
        assert "Traceback" not in done.stderr


async def test_each_new_connection_checks_the_server_again() -> None:
    """A replica attached while the engine runs: a new connection (here after CLIENT KILL)
    refuses to carry writes (503, nothing sent) until Redis is guarded, then WAITs."""
    with EmbeddedRedis() as primary:
        engine = await open_engine(_durable(primary.url))
        admin = primary.client()
        try:
            await make_sale(engine, "topology", size=10)
            await engine.purchase("topology", "alone")
            with EmbeddedRedis(replica_of=primary) as replica:
                replica.wait_in_sync()
                admin.client_kill_filter(_type="normal", skipme=True)
                await engine.redis.connection_pool.disconnect()  # redis-py's, killed too
                await asyncio.sleep(0.1)  # the engine's event loop sees its connections close
                with pytest.raises(EngineUnavailable, match="min-replicas-to-write"):
                    await engine.purchase("topology", "unguarded")
                admin.config_set("min-replicas-to-write", 1)
                admin.config_set("min-replicas-max-lag", 10)
                order = (await engine.purchase("topology", "guarded")).order
                assert order.status == "pending_payment"
                assert int(admin.info("replication")["connected_slaves"]) == 1
            assert await engine.buyer_orders("topology", "unguarded") == []
        finally:
            admin.close()
            await engine.aclose()


def _durable(url: str, **fields: Any) -> Settings:
    return Settings(
        redis=RedisSettings(url=url, namespace=f"d{secrets.token_hex(3)}"),
        **({"durability": "durable"} | fields),
    )
