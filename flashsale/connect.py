"""Opening what a process talks to, the same way in every process, from the ``Settings``.

- ``open_engine``: the engine on one Redis server or a Redis Cluster
  (``FLASHSALE_REDIS_CLUSTER``), every call bounded by ``FLASHSALE_REDIS_TIMEOUT_MS``
  and each node's queue by ``FLASHSALE_REDIS_MAX_PENDING``; in durable mode
  (``FLASHSALE_DURABILITY``) the server is checked first, and a process that
  writes refuses to start on a server that would take writes its replicas may
  miss (``ConfigError`` naming the settings: one line, exit 2); each new
  hot-path connection checks again (engine/durability.py);
- ``open_redis``: a plain redis-py client, ``Redis`` or ``RedisCluster``
  (``persist``, ``audit``), with the same read deadline;
- ``open_pool``: an asyncpg pool with the configured size and timeouts.

The caller closes what it opened (``Engine.aclose``, ``aclose``, ``Pool.close``).
A missing URL is a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis, RedisCluster

from flashsale.engine.cluster_client import WaitingRedisCluster
from flashsale.engine.durability import check_server
from flashsale.engine.engine import Engine
from flashsale.engine.transport import CallNotSent, ReplyLost, TransportOptions
from flashsale.settings import ConfigError, Settings

__all__ = ["need", "open_engine", "open_pool", "open_redis", "transport", "verify_durability"]

log = logging.getLogger("flashsale.connect")


def need(value: str | None, variable: str) -> str:
    """``value``, or a ``ConfigError`` naming ``variable`` when it is unset."""
    if not value:
        raise ConfigError(variable, "is not set")
    return value


def transport(settings: Settings, *, tool: bool = False) -> TransportOptions:
    """How the engine's hot path talks to Redis, from the settings (``tool``: a one-shot
    command, which does not warn about the server's durability on stderr)."""
    return TransportOptions(
        timeout_ms=settings.redis.timeout_ms,
        max_pending=settings.redis.max_pending,
        durability=settings.durability,
        warn_durability=not tool,
    )


async def verify_durability(settings: Settings) -> None:
    """In durable mode, a ``ConfigError`` (naming the settings) when the server would take
    writes its replicas may miss; AOF shortfalls are warnings.

    A server that does not answer is reported and passed (the process starts; its
    calls answer 503 until Redis is back, and each new connection is checked).
    The server is never reconfigured from here (it may be shared);
    ``engine.durability.ensure_durability`` can apply the AOF part of the mode.
    """
    url = need(settings.redis.url, "FLASHSALE_REDIS_URL")
    mode = settings.durability
    if mode != "durable":
        return
    try:
        state = await check_server(url, mode, timeout_s=settings.redis.timeout_ms / 1000)
    except (CallNotSent, ReplyLost) as exc:
        # not an error here: each new connection checks again once Redis answers
        log.info("durability %s not checked yet: %s", mode, exc)
        return
    if state.refusal:
        raise ConfigError("FLASHSALE_DURABILITY", f"is durable, but Redis {state.refusal}")
    for problem in state.problems:
        log.warning("durability %s not met: %s", mode, problem)


async def open_engine(settings: Settings, *, tool: bool = False) -> Engine:
    """The engine the settings name. A server process runs the start-up check above (a
    cluster's nodes are checked by each new connection instead); a one-shot ``tool``
    does not (a refusal still refuses its connections)."""
    url = need(settings.redis.url, "FLASHSALE_REDIS_URL")
    if not tool and not settings.redis.cluster:
        await verify_durability(settings)
    engine: Engine = Engine.from_url(
        url,
        namespace=settings.redis.namespace,
        idempotency_ttl_s=settings.redis.idempotency_ttl_s,
        max_connections=settings.redis.max_connections,
        cluster=settings.redis.cluster,
        socket_timeout_s=settings.redis.timeout_ms / 1000,
        transport=transport(settings, tool=tool),
    )
    return engine


async def open_redis(settings: Settings) -> Redis | RedisCluster:
    """A redis-py client for the configured server or cluster, every read and connect
    bounded by ``FLASHSALE_REDIS_TIMEOUT_MS`` (a frozen node fails a call within it;
    the write-behind keeps its blocking reads below it, store/persist.py).

    A cluster client learns the slot map here: redis-py's transaction pipeline
    (the audit's snapshot) fails on a cluster client that has not yet done so.
    A single server's client connects on first use.
    """
    url = need(settings.redis.url, "FLASHSALE_REDIS_URL")
    deadline_s = settings.redis.timeout_ms / 1000
    if settings.redis.cluster:
        cluster: RedisCluster = WaitingRedisCluster.from_url(
            url, socket_timeout=deadline_s, socket_connect_timeout=deadline_s
        )
        await cluster.initialize()
        return cluster
    client: Redis = Redis.from_url(
        url, socket_timeout=deadline_s, socket_connect_timeout=deadline_s
    )
    return client


class _Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no types
    """asyncpg's pool with a default timeout for ``acquire`` (asyncpg has none pool-wide);
    every pool method (``fetch``, ``execute``, ...) acquires through it.

    With ``command_timeout`` on every statement and ``timeout`` on each new
    connection's handshake, nothing waits on PostgreSQL without a deadline: a
    stalled server (frozen, failing over) turns into ``TimeoutError``, which the
    API answers 503 ``database_unavailable``."""

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
        timeout=database.acquire_timeout_s,  # a new connection's handshake (asyncpg: 60 s)
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
