"""What each Redis node did between two moments: script calls and CPU seconds, from INFO.

The node's own accounting (``INFO commandstats`` and ``INFO cpu``, the server process's
``getrusage``) rather than a clock: on a machine shared with other jobs a timed rate
moves with their load, the CPU a node spent per script call much less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# Every way a script reaches Redis; the engine sends EVALSHA (engine/engine.py).
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


@dataclass(frozen=True)
class NodeSample:
    """A node's counters at one moment."""

    url: str
    script_calls: int
    cpu_s: float  # used_cpu_user + used_cpu_sys: the whole server process

    def __sub__(self, before: NodeSample) -> NodeSample:
        return NodeSample(
            self.url, self.script_calls - before.script_calls, self.cpu_s - before.cpu_s
        )


def script_calls(commandstats: dict[str, Any]) -> int:
    """Script calls in an ``INFO commandstats`` reply (redis-py parses it per command) that
    did not fail: a NOSCRIPT reply (a node's first call, before the engine loads the
    script there and sends it again) is a call that ran nothing. Before Redis 7 every
    call counts (no ``failed_calls``)."""
    total = 0
    for name in SCRIPT_COMMANDS:
        stats = commandstats.get(f"cmdstat_{name}")
        if isinstance(stats, dict):
            total += int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))
    return total


async def sample(url: str) -> NodeSample:
    client = Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
        cpu = await client.info("cpu")
    finally:
        await client.aclose()
    used = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return NodeSample(url, script_calls(stats), used)


async def sample_all(urls: Sequence[str]) -> list[NodeSample]:
    return list(await asyncio.gather(*(sample(url) for url in urls)))


def deltas(after: Sequence[NodeSample], before: Sequence[NodeSample]) -> list[NodeSample]:
    return [a - b for a, b in zip(after, before, strict=True)]
