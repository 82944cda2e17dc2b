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
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import RedisCluster


class WaitingRedisCluster(RedisCluster):
    """``RedisCluster`` whose untargeted commands take a turn first (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        per_node = int(kwargs.get("max_connections", 100))  # RedisCluster's own default
        self._turns = asyncio.Semaphore(max(1, per_node // 2))

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:  # a node's own read (the write-behind's), as before
            return await super().execute_command(*args, **kwargs)
        async with self._turns:
            return await super().execute_command(*args, **kwargs)
