"""Opening what a process talks to, the same way in every process, from the ``Settings``.

- ``open_engine``: the engine on one Redis server or a Redis Cluster
  (``FLASHSALE_REDIS_CLUSTER``); with ``check_durability`` (the API's start-up)
  the server is checked against ``FLASHSALE_DURABILITY`` and, in durable mode,
  the engine WAITs for a connected replica per batch;
- ``open_redis``: a plain redis-py client, ``Redis`` or ``RedisCluster``
  (``persist``, ``audit``);
- ``open_pool``: an asyncpg pool with the configured size and timeouts.

The caller closes what it opened (``Engine.aclose``, ``aclose``, ``Pool.close``).
A missing URL is a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from flashsale.engine.durability import ensure_durability
from flashsale.engine.engine import Engine
from flashsale.settings import ConfigError, DurabilityMode, Settings

__all__ = ["need", "open_engine", "open_pool", "open_redis", "replicas_to_wait"]

log = logging.getLogger("flashsale.connect")


def need(value: str | None, variable: str) -> str:
    """``value``, or a ``ConfigError`` naming ``variable`` when it is unset."""
    if not value:
        raise ConfigError(variable, "is not set")
    return value


async def replicas_to_wait(redis_url: str, mode: DurabilityMode) -> int:
    """Check the server against ``mode``; the replicas to WAIT for per batch.

    A server that does not deliver what the mode promises is reported loudly
    but never reconfigured from here (it may be shared); ``engine.durability``
    can apply the mode.
    """
    client = Redis.from_url(redis_url, socket_connect_timeout=2, retry_on_error=[])
    try:
        state = await ensure_durability(client, mode)
    except (RedisError, OSError) as exc:
        # the API starts anyway (purchases answer 503 until Redis is back)
        log.warning("durability %s not checked: Redis did not answer (%s)", mode, exc)
        return 0
    finally:
        await client.aclose()
    for problem in state.problems:
        log.warning("durability %s not met: %s", mode, problem)
    return 1 if mode == "durable" and state.replicas > 0 else 0


async def open_engine(settings: Settings, *, check_durability: bool = False) -> Engine:
    """The engine the settings name. A cluster's durability is each node's (not checked)."""
    url = need(settings.redis.url, "FLASHSALE_REDIS_URL")
    wait_replicas = 0
    if check_durability and not settings.redis.cluster:
        wait_replicas = await replicas_to_wait(url, settings.durability)
    engine: Engine = Engine.from_url(
        url,
        namespace=settings.redis.namespace,
        idempotency_ttl_s=settings.redis.idempotency_ttl_s,
        max_connections=settings.redis.max_connections,
        cluster=settings.redis.cluster,
        wait_replicas=wait_replicas,
    )
    return engine


async def open_redis(settings: Settings) -> Redis | RedisCluster:
    """A redis-py client for the configured server or cluster.

    A cluster client learns the slot map here: redis-py's transaction pipeline
    (the audit's snapshot) fails on a cluster client that has not yet done so.
    A single server's client connects on first use.
    """
    url = need(settings.redis.url, "FLASHSALE_REDIS_URL")
    if settings.redis.cluster:
        cluster: RedisCluster = RedisCluster.from_url(url)
        await cluster.initialize()
        return cluster
    client: Redis = Redis.from_url(url)
    return client


class _Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no types
    """asyncpg's pool with a default timeout for ``acquire`` (asyncpg has none pool-wide);
    every pool method (``fetch``, ``execute``, ...) acquires through it."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def open_pool(
    settings: Settings, *, min_size: int = 1, max_size: int | None = None
) -> asyncpg.Pool:
    """An asyncpg pool on ``FLASHSALE_DATABASE_URL``; ``max_size`` defaults to the setting.

    ``min_size=0`` opens no connection up front (the API must start while
    PostgreSQL is down).
    """
    database = settings.database
    size = max_size or database.pool_max
    pool = _Pool(
        need(database.url, "FLASHSALE_DATABASE_URL"),
        acquire_timeout=database.acquire_timeout_s,
        command_timeout=database.query_timeout_s,
        min_size=min(min_size, size),
        max_size=size,
        # asyncpg.create_pool's defaults, which this replaces
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    await pool
    return pool
