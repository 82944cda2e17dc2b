"""Every benchmark in one go: ``flashsale bench`` or ``python -m flashsale.bench.run_all``.

Over 500 lines for a reason: it is the one place that orders the parts of a full run and
the baselines each is measured against in the same run; each part's own measuring lives
in its module (``bench/http.py``, ``script.py``, ``engine.py``, ...).

Writes ``bench/results/latest.md`` (Markdown tables) and ``docs/bench.png``
(the chart the README shows). Parts (``--only`` picks some):

- ``layers``: the purchase at each layer in the same run, at the same
  concurrency (50 clients): redis-benchmark EVALSHA of the purchase script (the
  ceiling) · the engine from one Python process · the HTTP endpoint (wrk) · a
  PostgreSQL-only peer (``bench/pg_peer.py``, SKIP LOCKED); ops/s and ratio to
  the ceiling. The app's bare POST endpoint is measured beside it.
- ``latency``: HTTP purchase p50/p99 at 100, 1,000 and 5,000 connections (wrk,
  closed loop: every connection sends its next request when answered).
- ``growth``: sales of 10^3, 10^5 and 10^7 serials: time to create, Redis
  memory of the sale's keys (MEMORY USAGE) at creation and after the
  purchases, purchase rate.
- ``drain``: the write-behind against a plain COPY (``bench/drain.py``, when
  this build has it).
- ``workers``: HTTP purchase req/s with 1 and 2 API worker processes.
- ``script``: the purchase script against the reference purchase in Redis alone
  (``bench/script.py``: redis-benchmark ``-P 1`` and ``-P 16``, same run), our
  rate ÷ the reference's.
- ``checkout``: carts of 1, 2 and 3 drops (``Checkouts.place``) against the same
  serials bought as single purchases (``bench/checkout.py``), serials/s and the ratio.
- ``handler``: the purchase handler against the bare POST, granian and uvicorn
  (``bench/http.py``: req/s ratio, the workers' CPU µs per request, p99 at
  1,000 connections paced at 0.2× the bare rate; one run each), and our purchase
  against the featureless peer (``bench/peer.py``: FastAPI, one Lua DECR) in the
  same run.
- ``opening``: a drop's opening second as the load test's clients sent it, against
  wrk's purchases/s on the same ``serve --with-workers`` in the same run
  (``bench/opening.py``; a few thousand buyers, bounded).
- ``cluster``: many drops and one hot drop on a private 3-master Redis Cluster
  (``bench/cluster.py``: purchases/s, each master's share, script rate and CPU per
  purchase, the write-behind's lag, a projection for N cores; one run).

Every figure is the median of ``--runs`` runs with its spread (min–max). Redis
is FLASHSALE_REDIS_URL and PostgreSQL FLASHSALE_DATABASE_URL, else private
embedded servers. Keys live in a namespace of their own and tables in a schema
of their own, removed afterwards. Load generators run in their own processes
(redis-benchmark, wrk); every phase is bounded in count and time.

This module runs the parts; results.py holds what they measured, report.py
writes the Markdown and chart.py draws the chart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flashsale.bench.chart import chart, title
from flashsale.bench.common import Figure, bench_database_url, bench_redis_url
from flashsale.bench.report import header, markdown
from flashsale.bench.results import (
    CONCURRENCY,
    Drain,
    Growth,
    Latency,
    Results,
    results_from_json,
    results_to_json,
)
from flashsale.devservers import free_port

PARTS = (
    "layers",
    "latency",
    "growth",
    "drain",
    "workers",
    "script",
    "handler",
    "cluster",
    "checkout",
    "opening",
)
LATENCY_CONNECTIONS = (100, 1000, 5000)
GROWTH_SIZES = (10**3, 10**5, 10**7)
WORKERS = (1, 2)


@dataclass(frozen=True)
class Config:
    runs: int
    quick: bool
    redis_requests: int  # per redis-benchmark run
    engine_requests: int
    pg_requests: int
    http_seconds: int  # per wrk phase
    growth_purchases: int  # per sale (at most the sale's size)
    list_sizes: tuple[int, ...]  # list sales beside the range ones (memory per serial)

    @classmethod
    def make(cls, quick: bool, runs: int | None) -> Config:
        if quick:
            return cls(runs or 1, True, 20_000, 5_000, 2_000, 2, 2_000, ())
        return cls(runs or 3, False, 200_000, 50_000, 20_000, 6, 20_000, (10**3, 10**5))


# --------------------------------------------------------------------------- services


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
        return f"{info.get('redis_version', '?')}"
    finally:
        client.close()


# --------------------------------------------------------------------------- engine parts


async def _layers_redis(url: str, cfg: Config, results: Results) -> None:
    """redis-benchmark (-P 1, the ceiling) and the engine, on fresh sales, in turn."""
    from flashsale.bench.engine import _drop, _new_sale, engine_rate, redis_benchmark
    from flashsale.engine import scripts
    from flashsale.engine.engine import Engine

    namespace = f"bench{secrets.token_hex(4)}"
    engine = Engine.from_url(url, namespace=namespace, max_connections=16)
    await engine.redis.script_load(scripts.load("purchase").source)
    ceiling: list[float] = []
    unpipelined: list[float] = []
    rates: list[float] = []
    try:
        for i in range(cfg.runs):
            for pipeline, into in ((16, ceiling), (1, unpipelined)):
                sale_id = f"layers-rb{pipeline}-{i}"
                await _new_sale(engine, sale_id)
                try:
                    into.append(
                        await asyncio.to_thread(
                            redis_benchmark, url, engine, sale_id, cfg.redis_requests, pipeline
                        )
                    )
                finally:
                    await _drop(engine, sale_id)
            sale_id = f"layers-engine-{i}"
            await _new_sale(engine, sale_id)
            try:
                rate, _ = await engine_rate(engine, sale_id, cfg.engine_requests, CONCURRENCY)
                rates.append(rate)
            finally:
                await _drop(engine, sale_id)
    finally:
        await engine.aclose()
    results.layers["redis-benchmark"] = Figure(tuple(ceiling))
    results.layers["redis-benchmark-p1"] = Figure(tuple(unpipelined))
    results.layers["engine"] = Figure(tuple(rates))


async def _sale_memory(engine: object, sale_id: str) -> int:
    """Bytes of every key of the sale (MEMORY USAGE, all samples)."""
    from flashsale.engine.engine import Engine

    assert isinstance(engine, Engine)
    tag = engine.keys(sale_id).tag
    total = 0
    async for key in engine.redis.scan_iter(match=f"{tag}:*", count=5000):
        total += int(await engine.redis.memory_usage(key, samples=0) or 0)
    return total


async def _growth(url: str, cfg: Config, results: Results) -> None:
    from flashsale.bench.engine import _drop, engine_rate
    from flashsale.engine.engine import Engine
    from flashsale.engine.models import SaleCreate, SerialsSpec

    namespace = f"bench{secrets.token_hex(4)}"
    engine = Engine.from_url(url, namespace=namespace, max_connections=16)
    plans = [("range", n) for n in GROWTH_SIZES] + [("list", n) for n in cfg.list_sizes]
    try:
        for kind, size in plans:
            create_ms: list[float] = []
            created: list[float] = []
            after: list[float] = []
            rates: list[float] = []
            purchases = min(size, cfg.growth_purchases)
            purchases -= purchases % CONCURRENCY or 0
            purchases = max(purchases, CONCURRENCY)
            for i in range(cfg.runs):
                sale_id = f"growth-{kind}-{size}-{i}"
                spec = (
                    SerialsSpec(range=(1, size))
                    if kind == "range"
                    else SerialsSpec(list=[f"S-{n:08d}" for n in range(size)])
                )
                started = time.perf_counter()
                await engine.create_sale(
                    SaleCreate(
                        sale_id=sale_id,
                        name="bench growth",
                        serials=spec,
                        assignment="random" if kind == "range" else "sequential",
                        per_user_limit=1,
                        start_at=datetime.now(UTC) - timedelta(minutes=1),
                    )
                )
                create_ms.append((time.perf_counter() - started) * 1000)
                try:
                    created.append(float(await _sale_memory(engine, sale_id)))
                    rate, _ = await engine_rate(engine, sale_id, purchases, CONCURRENCY)
                    rates.append(rate)
                    after.append(float(await _sale_memory(engine, sale_id)))
                finally:
                    await _drop(engine, sale_id)
            results.growth.append(
                Growth(
                    kind,
                    size,
                    Figure(tuple(create_ms)),
                    Figure(tuple(created)),
                    purchases,
                    Figure(tuple(after)),
                    Figure(tuple(rates)),
                )
            )
    finally:
        await engine.aclose()


async def _pg_peer(database_url: str, cfg: Config, results: Results) -> None:
    import asyncpg

    from flashsale.bench.pg_peer import run

    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
        sync = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    results.notes.append(
        f"PostgreSQL {version} (fsync {fsync}, synchronous_commit {sync}) for the peer"
    )
    results.layers["postgres-peer"] = await run(
        database_url, cfg.runs, cfg.pg_requests, CONCURRENCY
    )


# --------------------------------------------------------------------------- HTTP parts


@dataclass
class HttpTarget:
    """``flashsale serve`` (N workers, bench endpoints on) over a sale that never sells out."""

    url: str
    workdir: Path
    tokens: Path
    closed: Path

    def wrk(self, path: str, connections: int, seconds: int) -> tuple[float, float, float, int]:
        """(req/s, p50 ms, p99 ms, errors) of one closed-loop wrk run."""
        from flashsale.bench.http import parse_wrk, run_wrk

        threads = 2 if connections >= 2 else 1
        out = run_wrk(
            self.url,
            path,
            self.closed,
            self.tokens,
            connections=connections,
            duration_s=seconds,
            threads=threads,
        )
        rps, p50, p99, non_2xx, socket_errors = parse_wrk(out)
        return rps, p50, p99, non_2xx + socket_errors


@contextlib.contextmanager
def http_target(redis_url: str, workers: int) -> Iterator[HttpTarget]:
    from flashsale.api.tokens import mint_token
    from flashsale.bench import http

    namespace = f"bench{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="flashsale-bench-") as tmp:
        workdir = Path(tmp)
        tokens = workdir / "tokens.txt"
        tokens.write_text(
            "".join(mint_token(http.SECRET, f"buyer-{i}") + "\n" for i in range(http.N_BUYERS))
        )
        closed = workdir / "closed.lua"
        closed.write_text(http._CLOSED_LUA)
        env = {
            **os.environ,
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_NAMESPACE": namespace,
            "FLASHSALE_JWT_SECRET": http.SECRET,
            "FLASHSALE_BENCH_ENDPOINTS": "1",
        }
        for name in ("FLASHSALE_IP_RATE_PER_S", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        asyncio.run(http._prepare(redis_url, namespace))
        port = free_port()
        try:
            with http.server_process("granian", workers, port, env, workdir / "server.log"):
                yield HttpTarget(f"http://127.0.0.1:{port}", workdir, tokens, closed)
        finally:
            asyncio.run(http._cleanup(redis_url, namespace))


PURCHASE = "/v1/sales/bench/purchase"


async def served_connections(url: str, n: int, timeout_s: float = 5.0) -> int:
    """Open ``n`` connections, keep them all open, send one GET on each: how many are
    answered within ``timeout_s``. wrk cannot tell: a connection the server never reads
    is not an error to it until its own timeout, which a short run never reaches."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    request = b"GET /v1/sales/bench HTTP/1.1\r\nHost: bench\r\n\r\n"
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for start in range(0, n, 500):
            batch = await asyncio.gather(
                *(asyncio.open_connection(host, port) for _ in range(min(500, n - start))),
                return_exceptions=True,
            )
            conns += [c for c in batch if isinstance(c, tuple)]

        async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(request)
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return False
            return True

        answered = await asyncio.gather(*(ask(r, w) for r, w in conns))
        return sum(answered)
    finally:
        for _, writer in conns:
            writer.close()


def _http_layers_and_latency(
    redis_url: str, cfg: Config, results: Results, parts: set[str]
) -> None:
    from flashsale.bench.http import ECHO

    with http_target(redis_url, workers=2) as target:
        target.wrk(PURCHASE, CONCURRENCY, 1)  # warm-up: pools, token cache
        target.wrk(ECHO, CONCURRENCY, 1)
        if "layers" in parts:
            echo: list[float] = []
            purchase: list[float] = []
            for _ in range(cfg.runs):
                echo.append(target.wrk(ECHO, CONCURRENCY, cfg.http_seconds)[0])
                purchase.append(target.wrk(PURCHASE, CONCURRENCY, cfg.http_seconds)[0])
            results.echo = Figure(tuple(echo))
            results.layers["http"] = Figure(tuple(purchase))
        if "latency" in parts:
            for connections in LATENCY_CONNECTIONS:
                runs = [
                    target.wrk(PURCHASE, connections, cfg.http_seconds) for _ in range(cfg.runs)
                ]
                served = asyncio.run(served_connections(target.url, connections))
                results.latency.append(
                    Latency(
                        connections,
                        Figure(tuple(r[0] for r in runs)),
                        Figure(tuple(r[1] for r in runs)),
                        Figure(tuple(r[2] for r in runs)),
                        sum(r[3] for r in runs),
                        served,
                    )
                )


def _workers(redis_url: str, cfg: Config, results: Results) -> None:
    for workers in WORKERS:
        with http_target(redis_url, workers=workers) as target:
            target.wrk(PURCHASE, CONCURRENCY, 1)
            results.workers[workers] = Figure(
                tuple(
                    target.wrk(PURCHASE, CONCURRENCY, cfg.http_seconds)[0] for _ in range(cfg.runs)
                )
            )


def _handler(redis_url: str, cfg: Config, results: Results) -> None:
    from flashsale.bench import http

    seconds = ["--duration", "1", "--warmup", "1"] if cfg.quick else ["--duration", "10"]
    results.handler = http.run(["--server", "both", *seconds, "--redis-url", redis_url])


def _opening(redis_url: str, database_url: str, cfg: Config, results: Results) -> None:
    from flashsale.bench import opening

    quick = ["--users", "300", "--processes", "1", "--run-time", "15", "--wrk-seconds", "1"]
    argv = quick if cfg.quick else []
    results.opening = opening.run(argv, redis_url, database_url)


def parse_drain_rows(text: str) -> list[tuple[int, int, float, float]]:
    """(orders, consumers, drain/s, COPY/s) of every row ``bench/drain.py`` printed."""
    rows: list[tuple[int, int, float, float]] = []
    for line in text.splitlines():
        cells = [c.strip().replace(",", "") for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows.append((int(cells[0]), int(cells[1]), float(cells[3]), float(cells[4])))
    return list(dict.fromkeys(rows))  # drain.py prints its rows again as a table at the end


def _drain(cfg: Config, results: Results, redis_url: str, database_url: str) -> None:
    """``bench/drain.py`` once per run (it measures one run per consumer count)."""
    if importlib.util.find_spec("flashsale.bench.drain") is None:
        results.notes.append("drain vs COPY: bench/drain.py is not in this build")
        return
    orders, consumers = (5_000, ["1"]) if cfg.quick else (50_000, ["1", "2"])
    command = [sys.executable, "-m", "flashsale.bench.drain", "--orders", str(orders)]
    command += ["--consumers", *consumers]
    env = {**os.environ, "FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
    seen: dict[int, list[tuple[float, float]]] = {}
    for _ in range(cfg.runs):
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60 if cfg.quick else 600, env=env
        )
        if done.returncode != 0:
            results.notes.append(f"drain vs COPY failed: {done.stderr.strip()[-500:]}")
            return
        for _, n, drain, copy in parse_drain_rows(done.stdout):
            seen.setdefault(n, []).append((drain, copy))
    for n, runs in sorted(seen.items()):
        results.drain.append(
            Drain(
                n,
                orders,
                Figure(tuple(d for d, _ in runs)),
                Figure(tuple(c for _, c in runs)),
                Figure(tuple(d / c for d, c in runs)),
            )
        )
    results.notes.append(f"drain vs COPY reproduces with `{shlex.join(['python', *command[1:]])}`")


def _cluster(cfg: Config, results: Results, database_url: str) -> None:
    """``bench/cluster.py`` once (its own private cluster; PostgreSQL is the run's)."""
    from flashsale.bench import cluster
    from flashsale.bench.cluster_report import report

    sizing = ["--sales", "10", "--purchases", "2000"] if cfg.quick else []
    own = cluster.config_from(sizing)
    results.cluster = report(asyncio.run(cluster.measure(database_url, own)))
    command = ["python", "-m", "flashsale.bench.cluster", *sizing]
    results.notes.append(f"cluster reproduces with `{shlex.join(command)}`")


def _checkout(cfg: Config, results: Results, redis_url: str, database_url: str) -> None:
    from flashsale.bench import checkout

    buyers, sizes = (40, [1, 3]) if cfg.quick else (400, [1, 2, 3])
    results.checkout = asyncio.run(
        checkout.measure(redis_url, database_url, buyers, sizes, 32, cfg.runs)
    )
    command = ["python", "-m", "flashsale.bench.checkout", "--buyers", str(buyers), "--items"]
    results.notes.append(
        f"checkout reproduces with `{shlex.join(command + [str(n) for n in sizes])}`"
    )


# --------------------------------------------------------------------------- main


def run(cfg: Config, parts: set[str]) -> tuple[Results, list[str]]:
    results = Results()
    with bench_redis_url() as redis_url:
        header_bits = [f"Redis {_redis_version(redis_url)}"]
        if "script" in parts:
            from flashsale.bench.script import cost, measure

            requests = 20_000 if cfg.quick else cfg.redis_requests
            rounds, calls = (3, 5_000) if cfg.quick else (7, 50_000)
            results.script = asyncio.run(measure(redis_url, cfg.runs, requests))
            results.script |= asyncio.run(cost(redis_url, rounds, calls))
            results.notes.append(
                "script vs reference reproduces with "
                f"`python -m flashsale.bench.script --runs {cfg.runs} --requests {requests} "
                f"--rounds {rounds} --calls {calls}` (`--instructions 2000`: per call, "
                "under valgrind)"
            )
        if "layers" in parts or "growth" in parts:
            if "layers" in parts:
                asyncio.run(_layers_redis(redis_url, cfg, results))
            if "growth" in parts:
                asyncio.run(_growth(redis_url, cfg, results))
        if parts & {"layers", "drain", "cluster", "checkout"}:
            with bench_database_url() as database_url:
                if "layers" in parts:
                    asyncio.run(_pg_peer(database_url, cfg, results))
                if "drain" in parts:
                    _drain(cfg, results, redis_url, database_url)
                if "cluster" in parts:
                    _cluster(cfg, results, database_url)
                if "checkout" in parts:
                    _checkout(cfg, results, redis_url, database_url)
        needs_http = parts & {"layers", "latency", "workers", "handler", "opening"}
        if needs_http and shutil.which("wrk") is None:
            results.notes.append("HTTP parts skipped: wrk is not installed (apt-get install wrk)")
        elif needs_http:
            if parts & {"layers", "latency"}:
                _http_layers_and_latency(redis_url, cfg, results, parts)
            if "workers" in parts:
                _workers(redis_url, cfg, results)
            if "handler" in parts:
                _handler(redis_url, cfg, results)
            if "opening" in parts:
                with bench_database_url() as database_url:
                    _opening(redis_url, database_url, cfg, results)
    return results, header_bits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="bounded smoke run (~2 min)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (3; quick 1)")
    parser.add_argument("--only", action="append", choices=PARTS, help="only these parts")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.md"))
    parser.add_argument("--chart", type=Path, default=Path("docs/bench.png"))
    parser.add_argument(
        "--replot", type=Path, default=None, help="redraw the chart from a results .json"
    )
    args = parser.parse_args(argv)
    cfg = Config.make(args.quick, args.runs)
    if args.replot is not None:
        saved = json.loads(args.replot.read_text())
        chart(results_from_json(saved["results"]), args.chart, saved["title"])
        print(f"wrote {args.chart}")
        return 0
    parts = set(args.only or PARTS)
    started = time.monotonic()
    results, bits = run(cfg, parts)
    took = time.monotonic() - started
    shown = argv if argv is not None else sys.argv[1:]
    head = header(quick=cfg.quick, runs=cfg.runs, versions=bits, took_s=took, argv=shown)
    text = markdown(results, head)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    chart_title = title(cfg.runs)
    args.out.with_suffix(".json").write_text(
        json.dumps({"title": chart_title, "results": results_to_json(results)}, indent=1)
    )
    chart(results, args.chart, chart_title)
    print(text)
    print(f"wrote {args.out} (and .json) and {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
