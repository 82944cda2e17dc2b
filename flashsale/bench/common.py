"""Shared pieces of the benchmarks: where Redis is, a scratch database and namespace,
medians with spread, Markdown rows."""

from __future__ import annotations

import os
import secrets
import signal
import statistics
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from flashsale.devservers import ChildProcess
from flashsale.settings import Settings
from flashsale.store import migrate


@dataclass(frozen=True)
class Figure:
    """A median of several runs with its spread (min..max)."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def show(self, unit: str = "", digits: int = 0) -> str:
        lo, hi = min(self.runs), max(self.runs)
        return f"{self.median:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


@asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A migrated scratch database, created from an admin URL and dropped afterwards."""
    db = f"flashsale_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{db}"')
        url = f"{admin_url.rpartition('/')[0]}/{db}"
        try:
            await migrate.upgrade(url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch(redis_url: str, admin_url: str) -> AsyncIterator[tuple[str, Redis, str]]:
    """A migrated scratch database (created, then dropped) and a private Redis key
    namespace (deleted afterwards): (database URL, Redis client, namespace)."""
    namespace = f"bench{secrets.token_hex(4)}"
    async with scratch_database(admin_url) as url:
        redis = Redis.from_url(redis_url)
        try:
            yield url, redis, namespace
        finally:
            keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
            if keys:
                await redis.unlink(*keys)
            await redis.aclose()


@contextmanager
def bench_redis_url() -> Iterator[str]:
    """FLASHSALE_REDIS_URL when set, else a private embedded Redis for the run."""
    url = Settings.from_env().redis.url
    if url:
        yield url
        return
    from flashsale.devservers import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


@contextmanager
def bench_database_url() -> Iterator[str]:
    """FLASHSALE_DATABASE_URL when set, else a private embedded PostgreSQL for the run."""
    url = Settings.from_env().database.url
    if url:
        yield url
        return
    from flashsale.devservers import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        yield server.url


def machine_line() -> str:
    return f"{os.cpu_count()} cores"


def loopback_server(cmd: Sequence[str], port: int, env: dict[str, str], log: Path) -> ChildProcess:
    """An HTTP server process on 127.0.0.1:``port``, ready once its /health answers 200;
    stopped with SIGINT (a graceful shutdown of every worker) within 15 s."""
    return ChildProcess(
        cmd,
        env=env,
        log=log,
        ready_url=f"http://127.0.0.1:{port}/health",
        start_timeout_s=30,
        stop_signal=signal.SIGINT,
        grace_s=15,
    )
