"""Durability modes: what a crash of Redis may cost, chosen per deployment.

- ``fast``: Redis without AOF. A Redis crash loses all of Redis: the sales' hot
  state, and the orders the write-behind had not written yet (orders already in
  PostgreSQL stay there; the audit then reports them as ``missing_in_redis``).
  For rehearsals and drops whose loss is acceptable.
- ``durable``: Redis AOF with ``appendfsync always``: Redis fsyncs before it
  replies, so every purchase a buyer was told about survives a crash or power
  loss; after a restart run ``flashsale recover`` (truncated-AOF detection,
  BGREWRITEAOF, audit before sales reopen). A server with replicas must also
  refuse, before a script runs, the writes its replicas would miss
  (``min-replicas-to-write`` >= 1 and ``min-replicas-max-lag`` >= 1): a lost
  replica then means 503 with nothing sold. The engine WAITs for that many
  replicas per pipelined batch, so a fail-over does not lose acknowledged
  purchases either; a WAIT that comes back short after the scripts ran still
  delivers their real replies (the orders exist) and logs an alert.

``FLASHSALE_DURABILITY`` (``fast`` | ``durable``; default ``durable``; read into
``Settings.durability``) selects the mode. In durable mode every process that
writes checks the server at start (``connect.open_engine`` refuses to start on
an unguarded replica, naming the settings) and again on every new hot-path
connection (``DurabilityGuard``: a reconnect may land on another server after a
fail-over); a shortfall of AOF is a warning. ``ensure_durability`` checks the
server and, when allowed, applies the AOF part of the mode with CONFIG SET
(Redis 7 turns AOF on at runtime by writing a fresh base file first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from flashsale.engine.codec import text
from flashsale.engine.resp import RespConnection, encode_command
from flashsale.settings import DurabilityMode as Mode

log = logging.getLogger("flashsale.durability")

GUARD_SETTINGS = "min-replicas-to-write >= 1 and min-replicas-max-lag >= 1"


class DurabilityState(msgspec.Struct, kw_only=True):
    mode: Mode
    ok: bool  # the server does what the mode promises
    appendonly: bool
    appendfsync: str
    replicas: int  # connected replicas
    min_replicas_to_write: int = 0
    min_replicas_max_lag: int = 0
    changed: bool = False
    problems: list[str] = msgspec.field(default_factory=list)  # warnings (AOF)
    refusal: str = ""  # why no write may be sent (durable mode only)

    @property
    def wait_replicas(self) -> int:
        """Replicas a batch WAITs for in durable mode: those Redis requires per write."""
        guarded = self.min_replicas_to_write >= 1 and self.min_replicas_max_lag >= 1
        if self.mode != "durable" or self.refusal or not guarded:
            return 0
        return self.min_replicas_to_write


def assess(mode: Mode, config: Mapping[str, str], replicas: int) -> DurabilityState:
    """The state of a server from its ``CONFIG GET`` values and its connected replicas.

    A value that could not be read is absent from ``config``.
    """
    appendonly = config.get("appendonly", "no") == "yes"
    appendfsync = config.get("appendfsync", "")
    to_write = int(config.get("min-replicas-to-write") or 0)
    max_lag = int(config.get("min-replicas-max-lag") or 0)
    problems: list[str] = []
    refusal = ""
    if mode == "durable":
        if "appendonly" not in config:
            problems.append("the AOF settings could not be read (CONFIG GET append*)")
        elif not appendonly:
            problems.append("appendonly is no: a crash loses acknowledged purchases")
        elif appendfsync != "always":
            problems.append(f"appendfsync is {appendfsync}: up to ~1 s of purchases can be lost")
        if replicas and "min-replicas-to-write" not in config:
            refusal = (
                f"has {replicas} replica(s) and its min-replicas-* settings could not be "
                f"read (CONFIG GET): durable mode needs {GUARD_SETTINGS}"
            )
        elif replicas and (to_write < 1 or max_lag < 1):
            refusal = (
                f"has {replicas} replica(s) but min-replicas-to-write is {to_write} and "
                f"min-replicas-max-lag is {max_lag}: set {GUARD_SETTINGS} (e.g. CONFIG SET "
                "min-replicas-to-write 1, CONFIG SET min-replicas-max-lag 10) so Redis "
                "refuses writes its replicas would miss, or use FLASHSALE_DURABILITY=fast"
            )
    return DurabilityState(
        mode=mode,
        ok=not problems and not refusal,
        appendonly=appendonly,
        appendfsync=appendfsync,
        replicas=replicas,
        min_replicas_to_write=to_write,
        min_replicas_max_lag=max_lag,
        problems=problems,
        refusal=refusal,
    )


def _pairs(reply: Any) -> dict[str, str]:
    """CONFIG GET's flat [name, value, ...] reply; nothing when it was refused."""
    if isinstance(reply, ResponseError) or not isinstance(reply, list):
        return {}
    return {text(k): text(v) for k, v in zip(reply[::2], reply[1::2], strict=True)}


def _connected_replicas(info: Any) -> int:
    if isinstance(info, Mapping):  # redis-py parses INFO
        return int(info.get("connected_slaves", 0))
    for line in text(info).splitlines():
        if line.startswith("connected_slaves:"):
            return int(line.partition(":")[2])
    return 0


_CHECK = [
    encode_command(["CONFIG", "GET", "append*"]),
    encode_command(["CONFIG", "GET", "min-replicas-*"]),
    encode_command(["INFO", "replication"]),
]


async def state_over(
    conn: RespConnection, mode: Mode, deadline: float | None = None
) -> DurabilityState:
    """The server's state, read in one round trip on a hot-path connection."""
    appends, guards, info = await conn.roundtrip(b"".join(_CHECK), len(_CHECK), deadline)
    if isinstance(info, ResponseError):
        raise info
    return assess(mode, {**_pairs(appends), **_pairs(guards)}, _connected_replicas(info))


class NotDurable(ConnectionError):
    """Durable mode, and the server would take writes its replicas may miss."""


class DurabilityGuard:
    """The check each new hot-path connection runs in durable mode (a ``ConnectHook``).

    A refusal refuses the connection: its calls answer ``engine_unavailable``
    (nothing was sent) until the server is configured so; the next connection
    checks again. ``wait_replicas`` is what the last check found.
    """

    def __init__(self, mode: Mode, *, warn: bool = True) -> None:
        self.mode = mode
        self.wait_replicas = 0
        self._level = logging.WARNING if warn else logging.DEBUG
        self._warned = False

    async def __call__(self, conn: RespConnection) -> None:
        state = await state_over(conn, self.mode)
        if state.refusal:
            log.error("durability %s: Redis at %s %s", self.mode, conn.address, state.refusal)
            raise NotDurable(f"Redis at {conn.address} {state.refusal}")
        if state.problems and not self._warned:
            self._warned = True
            for problem in state.problems:
                log.log(
                    self._level,
                    "durability %s not met at %s: %s",
                    self.mode,
                    conn.address,
                    problem,
                )
        self.wait_replicas = state.wait_replicas


async def check_server(url: str, mode: Mode, *, timeout_s: float) -> DurabilityState:
    """The state of the server at ``url`` (a start-up check); ``CallNotSent``/``ReplyLost``
    when it does not answer."""
    conn = RespConnection(url, timeout_s=timeout_s)
    try:
        return await state_over(conn, mode)
    finally:
        await conn.close()


async def _state(redis: Redis, mode: Mode) -> DurabilityState:
    config: dict[str, str] = {}
    for pattern in ("append*", "min-replicas-*"):
        try:
            config.update({text(k): text(v) for k, v in (await redis.config_get(pattern)).items()})
        except ResponseError:
            pass  # CONFIG renamed or refused: assess() reports what it could not read
    replication = await redis.info("replication")
    return assess(mode, config, _connected_replicas(replication))


async def ensure_durability(
    redis: Redis, mode: Mode, *, apply: bool = False, timeout_s: float = 60.0
) -> DurabilityState:
    """Check (and with ``apply``, set) the server's persistence for ``mode``.

    ``apply`` turns AOF on with ``appendfsync always``; it never changes the
    replication settings (an operator's decision, reported in ``refusal``).
    """
    state = await _state(redis, mode)
    if not state.problems or not apply or mode == "fast":
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
