"""Durability modes: what a crash of Redis may cost, chosen per deployment.

- ``fast``: Redis without AOF. A Redis crash loses all of Redis: the sales' hot
  state, and the orders the write-behind had not written yet (orders already in
  PostgreSQL stay there; the audit then reports them as ``missing_in_redis``).
  For rehearsals and drops whose loss is acceptable.
- ``durable``: Redis AOF with ``appendfsync always``: Redis fsyncs before it
  replies, so every purchase a buyer was told about survives a crash or power
  loss; after a restart run ``flashsale recover`` (truncated-AOF detection,
  BGREWRITEAOF, audit before sales reopen). Where replicas are configured the
  engine also waits for one (``WAIT 1 <ms>`` per pipelined batch) so a
  fail-over does not lose acknowledged purchases either.

``FLASHSALE_DURABILITY`` (``fast`` | ``durable``; default ``durable``; read into
``Settings.durability``) selects the mode; ``ensure_durability`` checks the server
at start-up and, when allowed, applies the mode with CONFIG SET (Redis 7 turns
AOF on at runtime by writing a fresh base file first).
"""

from __future__ import annotations

import asyncio

import msgspec
from redis.asyncio import Redis

from flashsale.engine.codec import text
from flashsale.settings import DurabilityMode as Mode


class DurabilityState(msgspec.Struct, kw_only=True):
    mode: Mode
    ok: bool  # the server does what the mode promises
    appendonly: bool
    appendfsync: str
    replicas: int  # connected replicas (WAIT them in durable mode when > 0)
    changed: bool = False
    problems: list[str] = msgspec.field(default_factory=list)


async def _state(redis: Redis, mode: Mode) -> DurabilityState:
    config = await redis.config_get("append*")
    appendonly = text(config.get("appendonly", "no")) == "yes"
    appendfsync = text(config.get("appendfsync", ""))
    replication = await redis.info("replication")
    replicas = int(replication.get("connected_slaves", 0))
    problems: list[str] = []
    if mode == "durable":
        if not appendonly:
            problems.append("appendonly is no: a crash loses acknowledged purchases")
        if appendfsync != "always":
            problems.append(f"appendfsync is {appendfsync}: up to ~1 s of purchases can be lost")
    return DurabilityState(
        mode=mode,
        ok=not problems,
        appendonly=appendonly,
        appendfsync=appendfsync,
        replicas=replicas,
        problems=problems,
    )


async def ensure_durability(
    redis: Redis, mode: Mode, *, apply: bool = False, timeout_s: float = 60.0
) -> DurabilityState:
    """Check (and with ``apply``, set) the server's persistence for ``mode``."""
    state = await _state(redis, mode)
    if state.ok or not apply or mode == "fast":
        return state
    await redis.config_set("appendfsync", "always")
    if not state.appendonly:
        await redis.config_set("appendonly", "yes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:  # the base file is written in the background before AOF is on
            info = await redis.info("persistence")
            if not int(info.get("aof_rewrite_in_progress", 0)) and not int(
                info.get("aof_rewrite_scheduled", 0)
            ):
                break
            if loop.time() > deadline:
                raise TimeoutError("AOF did not turn on in time")
            await asyncio.sleep(0.05)
    state = await _state(redis, mode)
    state.changed = True
    return state
