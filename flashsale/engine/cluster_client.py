"""A Redis Cluster client whose commands wait for a connection instead of failing.

On one server the engine's redis-py pool is a ``BlockingConnectionPool``: a burst of
reads waits for a free connection. redis-py's asyncio ``RedisCluster`` has no such pool:
past ``max_connections`` to a node it raises ``MaxConnectionsError`` at once, and after
such a burst (a few hundred reads at once in one API worker, the money audit's 64 reads
against 32 connections) the worker's connections to that node stayed broken: every
later read answered 500. So the commands a process sends wait here, at most half its
per-node connections at once, which leaves the other half to a write-behind's blocking
reads (store/cluster_wait.py caps those at half a node's pool, and sends them to their
node with ``target_nodes``: they pass without waiting, so they never hold a turn).

A second guard: when a node times out, redis-py (8.1) marks the cluster for a
reinitialize, which disconnects connections that concurrent commands to *other*
nodes are still setting up; such a command fails with ``AttributeError: 'NoneType'
object has no attribute 'writelines'`` from inside redis-py's connection (seen when a
master froze under the write-behind). That is a lost connection, so it is raised as
one (``ConnectionError``), which every caller already retries, not a bug of ours that
kills the process.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

_REDIS_CONNECTION_MODULE = "redis.asyncio.connection"


def torn_connection(exc: BaseException) -> bool:
    """An ``AttributeError`` raised inside redis-py's connection code: its socket
    reader or writer was taken away under it (see the module)."""
    if not isinstance(exc, AttributeError):
        return False
    tb: TracebackType | None = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_globals.get("__name__") == _REDIS_CONNECTION_MODULE


class WaitingRedisCluster(RedisCluster):
    """``RedisCluster`` whose untargeted commands take a turn first (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        per_node = int(kwargs.get("max_connections", 100))  # RedisCluster's own default
        self._turns = asyncio.Semaphore(max(1, per_node // 2))

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if "target_nodes" in kwargs:  # a node's own read (the write-behind's), as before
                return await super().execute_command(*args, **kwargs)
            async with self._turns:
                return await super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            if torn_connection(exc):
                raise RedisConnectionError(f"connection torn down under a command: {exc}") from exc
            raise
