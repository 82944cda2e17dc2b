"""``flashsale recover``: make a restarted Redis safe before its sales reopen.

Redis 7.0 (``aof-load-truncated yes``, the default) loads an AOF whose tail was
cut by a power loss and truncates the file at the last complete command. When
the cut fell inside the MULTI/EXEC block of a Lua script's effects, the file
then ends with an open MULTI: the next commands are appended after it, and the
NEXT restart replays half of the old script (a serial drawn and a buyer counted
with no order) inside the new block. A BGREWRITEAOF right after such a load
replaces the file with the dataset as loaded, and the hazard is gone.

``recover()``:
1. detects a truncated load: the server's log ("loaded anyway because
   aof-load-truncated is enabled" since the last start) and the AOF files
   themselves (an incr file whose MULTI blocks do not balance); when neither
   can be read (a remote server) the answer is "unknown", treated as truncated;
2. rewrites the AOF (BGREWRITEAOF) and waits for it to finish;
3. pauses every open sale, audits each, and reopens only those whose audit is
   clean; the others stay paused for an operator, listed in the report.

On a Redis Cluster, steps 1 and 2 run on every master (each has its own AOF, log
and rewrite; a node's log and files are read when they are on this machine, else
"unknown" as above), step 3 on every sale of the cluster.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis, RedisCluster

from flashsale.engine.codec import text
from flashsale.engine.engine import Engine
from flashsale.engine.errors import SaleClosed
from flashsale.engine.models import SaleUpdate
from flashsale.errors import FlashsaleError
from flashsale.store.audit import AuditReport, audit_sale

LOADED_ANYWAY = "loaded anyway because aof-load-truncated is enabled"
START_MARKERS = ("Server initialized", "oO0OoO0OoO0Oo Redis is starting")


class AofCheck(msgspec.Struct, kw_only=True):
    aof_enabled: bool
    truncated: bool | None  # None: could not tell (no log, no file access)
    evidence: list[str] = msgspec.field(default_factory=list)


class SaleRecovery(msgspec.Struct, kw_only=True):
    sale_id: str
    was_open: bool
    reopened: bool
    ok: bool
    violations: list[str]


class NodeRecovery(msgspec.Struct, kw_only=True):
    node: str  # host:port
    aof: AofCheck
    rewritten: bool


class RecoverReport(msgspec.Struct, kw_only=True):
    ok: bool
    aof: AofCheck  # all nodes together: truncated when any node was
    rewritten: bool  # any node rewritten
    sales: list[SaleRecovery]
    duration_ms: int
    nodes: list[NodeRecovery] = msgspec.field(default_factory=list)


async def _config(redis: Redis | RedisCluster, name: str) -> str:
    reply = await redis.config_get(name)
    return text(reply.get(name, "")) if reply else ""


def _log_since_start(path: Path, tail_bytes: int = 1 << 20) -> list[str]:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - tail_bytes))
        lines = fh.read().decode(errors="replace").splitlines()
    start = 0
    for i, line in enumerate(lines):
        if any(marker in line for marker in START_MARKERS):
            start = i
    return lines[start:]


def unbalanced_multi(path: Path) -> str | None:
    """Why the AOF file's MULTI/EXEC blocks do not balance, or None when they do.

    A streaming RESP parse: memory stays constant whatever the file size.
    """
    depth = 0
    with path.open("rb") as fh:
        while True:
            header = fh.readline()
            if not header:
                break
            if not header.startswith(b"*") or not header.endswith(b"\r\n"):
                return f"{path.name}: garbage at offset {fh.tell() - len(header)}"
            argc = int(header[1:-2])
            name = b""
            for i in range(argc):
                bulk = fh.readline()
                if not bulk.startswith(b"$"):
                    return f"{path.name}: cut inside a command"
                size = int(bulk[1:-2])
                data = fh.read(size + 2)
                if len(data) != size + 2:
                    return f"{path.name}: cut inside a command"
                if i == 0:
                    name = data[:-2].upper()
            if name == b"MULTI":
                if depth:
                    return f"{path.name}: MULTI inside an open MULTI (a half script would replay)"
                depth = 1
            elif name in (b"EXEC", b"DISCARD"):
                depth = 0
    if depth:
        return f"{path.name}: ends inside an open MULTI (a half script would replay)"
    return None


async def check_aof(redis: Redis | RedisCluster) -> AofCheck:
    info = await redis.info("persistence")
    enabled = bool(int(info.get("aof_enabled", 0)))
    if not enabled:
        return AofCheck(aof_enabled=False, truncated=False)
    evidence: list[str] = []
    looked = False
    directory = Path(await _config(redis, "dir"))
    logfile = await _config(redis, "logfile")
    if logfile:
        path = Path(logfile) if os.path.isabs(logfile) else directory / logfile
        if path.is_file():
            looked = True
            evidence += [
                line
                for line in _log_since_start(path)
                if LOADED_ANYWAY in line or "Truncating the AOF" in line
            ]
    aof_dir = directory / (await _config(redis, "appenddirname") or "appendonlydir")
    if aof_dir.is_dir():
        looked = True
        for incr in sorted(aof_dir.glob("*.incr.aof")):
            why = unbalanced_multi(incr)
            if why:
                evidence.append(why)
    truncated = bool(evidence) if looked else None
    return AofCheck(aof_enabled=True, truncated=truncated, evidence=evidence)


async def rewrite_aof(redis: Redis | RedisCluster, *, timeout_s: float = 120.0) -> None:
    """BGREWRITEAOF and wait until the new base file is in place."""
    before = int((await redis.info("persistence")).get("aof_rewrites", 0))
    await redis.bgrewriteaof()
    deadline = time.monotonic() + timeout_s
    while True:
        info = await redis.info("persistence")
        done = int(info.get("aof_rewrites", 0)) > before
        idle = not int(info.get("aof_rewrite_in_progress", 0)) and not int(
            info.get("aof_rewrite_scheduled", 0)
        )
        if done and idle:
            if text(info.get("aof_last_bgrewrite_status", "ok")) != "ok":
                raise RuntimeError("BGREWRITEAOF failed; see the Redis log")
            return
        if time.monotonic() > deadline:
            raise TimeoutError("BGREWRITEAOF did not finish in time")
        await asyncio.sleep(0.05)


async def recover(
    engine: Engine,
    pool: asyncpg.Pool,
    *,
    force_rewrite: bool = False,
    deep: bool = True,
) -> RecoverReport:
    """Detect a truncated AOF load on each node, rewrite it, then audit every sale before
    it reopens."""
    started = time.monotonic()
    redis = engine.redis
    nodes = [
        await _recover_node(name, client, force_rewrite) async for name, client in _primaries(redis)
    ]
    results = [
        await _recover_sale(engine, redis, pool, engine.namespace, sale_id, deep)
        for sale_id in await engine.sale_ids()
    ]
    return RecoverReport(
        ok=all(r.ok for r in results),
        aof=_together([n.aof for n in nodes]),
        rewritten=any(n.rewritten for n in nodes),
        sales=results,
        duration_ms=int((time.monotonic() - started) * 1000),
        nodes=nodes,
    )


async def _primaries(redis: Redis | RedisCluster) -> AsyncIterator[tuple[str, Redis]]:
    """Each master with a client of its own (one server: itself)."""
    if isinstance(redis, Redis):
        kwargs = redis.connection_pool.connection_kwargs
        yield f"{kwargs.get('host')}:{kwargs.get('port')}", redis
        return
    await redis.initialize()
    for node in redis.get_primaries():
        kwargs = node.connection_kwargs
        client = Redis(
            host=node.host,
            port=int(node.port),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            socket_timeout=kwargs.get("socket_timeout"),
        )
        try:
            yield node.name, client
        finally:
            await client.aclose()


async def _recover_node(name: str, client: Redis, force_rewrite: bool) -> NodeRecovery:
    aof = await check_aof(client)
    rewritten = False
    if aof.aof_enabled and (force_rewrite or aof.truncated is not False):
        await rewrite_aof(client)
        rewritten = True
    return NodeRecovery(node=name, aof=aof, rewritten=rewritten)


def _together(checks: list[AofCheck]) -> AofCheck:
    """Several nodes' checks as one: truncated if any was, unknown if any could not tell."""
    truncated: bool | None = False
    for check in checks:
        if check.truncated:
            truncated = True
            break
        if check.aof_enabled and check.truncated is None:
            truncated = None
    return AofCheck(
        aof_enabled=any(c.aof_enabled for c in checks),
        truncated=truncated,
        evidence=[e for c in checks for e in c.evidence],
    )


async def _recover_sale(
    eng: Engine,
    redis: Redis | RedisCluster,
    pool: asyncpg.Pool,
    namespace: str,
    sale_id: str,
    deep: bool,
) -> SaleRecovery:
    stored = await redis.hget(eng.keys(sale_id).meta, "status")
    was_open = stored is not None and text(stored) == "open"
    unpaused = ""  # why a bucket of the sale could not be paused
    if was_open:
        try:
            await eng.tune(sale_id, SaleUpdate(status="paused"), actor="recover")
        except SaleClosed:
            was_open = False  # past its end: nothing to pause or reopen
        except FlashsaleError as exc:
            # a bucketed drop paused in some buckets and not in another (one lost its
            # keys): it was open, and stays shut until an operator looks
            unpaused = f"not every bucket could be paused: {exc.code} ({exc})"
    report: AuditReport = await audit_sale(redis, pool, namespace, sale_id, deep=deep)
    violations = [f"{v.code} x{v.count}: {v.detail}" for v in report.violations]
    violations += [unpaused] if unpaused else []
    reopened = False
    if was_open and report.ok and not unpaused:
        await eng.tune(sale_id, SaleUpdate(status="open"), actor="recover")
        reopened = True
    return SaleRecovery(
        sale_id=sale_id,
        was_open=was_open,
        reopened=reopened,
        ok=report.ok and not unpaused,
        violations=violations,
    )


def as_dict(report: RecoverReport) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(report)
    return result
