"""The featureless peer of issue #14: what a plain Python flash-sale service does per purchase.

FastAPI under uvicorn (httptools, uvloop, no access log), one EVALSHA of a Lua DECR
(``bench/lua/peer-decr-1.lua``) per ``POST /purchase``: no token, no body, no serial,
no order, no event, no persistence. ``bench/http.py`` runs it with the same worker
count as our server, in the same run, and reports our purchase ÷ the peer's (goal
1.3×: we do far more per purchase, and buyers compare us with it anyway).

Redis is FLASHSALE_REDIS_URL, its one key in FLASHSALE_NAMESPACE (``seed`` sets the
stock before the run). Needs the ``bench`` extra (fastapi), which ``make setup`` installs.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from flashsale.bench.common import loopback_server
from flashsale.devservers import ChildProcess
from flashsale.engine.keys import bench_peer_stock
from flashsale.settings import Settings

PURCHASE = "/purchase"
STOCK = 10**9  # never sold out in a bench run


def source() -> str:
    return resources.files("flashsale.bench").joinpath("lua/peer-decr-1.lua").read_text()


def create_app() -> FastAPI:
    """The peer's app (uvicorn ``--factory``), one per worker process."""
    settings = Settings.from_env()
    # as many Redis connections as our engine keeps (FLASHSALE_REDIS_MAX_CONNECTIONS): an
    # unbounded pool opens one per waiting request and times out under 1,000 connections
    pool = BlockingConnectionPool.from_url(
        settings.redis.url or "redis://127.0.0.1:6379/0",
        max_connections=settings.redis.max_connections,
    )
    redis = Redis(connection_pool=pool)
    decr = redis.register_script(source())
    stock = [bench_peer_stock(settings.redis.namespace)]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post(PURCHASE, response_model=None)  # no pydantic pass over the reply
    async def purchase() -> JSONResponse | dict[str, int]:
        left = int(await decr(keys=stock))
        if left < 0:
            return JSONResponse({"error": "sold_out"}, status_code=409)
        return {"left": left}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


async def seed(redis: Redis | RedisCluster, namespace: str, units: int = STOCK) -> None:
    await redis.set(bench_peer_stock(namespace), units)


def process(workers: int, port: int, env: dict[str, str], log: Path) -> ChildProcess:
    """The peer under uvicorn with ``workers`` workers, ready once /health answers."""
    cmd = [sys.executable, "-m", "uvicorn", "flashsale.bench.peer:create_app", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    cmd += ["--log-level", "warning", "--backlog", "16384"]
    return loopback_server(cmd, port, env, log)
