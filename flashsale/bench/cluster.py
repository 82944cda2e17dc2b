"""Past one Redis: many drops, and one hot drop, on an embedded 3-master Redis Cluster.

    python -m flashsale.bench.cluster [--sales 50] [--purchases 60000] [--persisters 1]
                                      [--buckets 1] [--concurrency 64] [--max-seconds 120]

Uses FLASHSALE_DATABASE_URL as an admin URL (a scratch database is created and
dropped), else a private embedded PostgreSQL; the cluster is always a private one
(flashsale/devservers/cluster.py), started and stopped by the run. Two parts:

- **Many drops**: ``--sales`` sales at once, buyers spread over them (round robin),
  the write-behind (``--persisters`` ``flashsale persist`` processes on the cluster,
  default settings) writing into PostgreSQL meanwhile.
  Purchases/s, the share of each master, and the write-behind's lag: per order
  (``persisted_at - created_at``: the write's transaction start minus the purchase)
  and at the end (from the last acknowledged purchase until every order is in
  PostgreSQL). Every acknowledged order is looked up there: none may be missing.
- **One hot drop**: one sale, each master's script calls/s and CPU per call from
  its own INFO (commandstats, ``used_cpu_user + used_cpu_sys``) around the buying,
  for each ``--buckets`` count. The report projects the rate for N cores from these
  (cluster_report.py), written down as a projection.

The load comes from one Python process (``--concurrency`` tasks): on a 2-core machine
it is the limit, not the cluster; hence the per-node CPU figures. Every phase is
bounded in purchases and in seconds (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from flashsale.bench.cluster_report import report
from flashsale.bench.cluster_results import ClusterResult, HotDrop, ManyDrops, MasterLoad
from flashsale.bench.common import scratch_database
from flashsale.bench.engine import _new_sale
from flashsale.bench.nodes import NodeSample, deltas, sample_all
from flashsale.devservers import ChildProcess, EmbeddedRedisCluster, free_port
from flashsale.engine.engine import Engine
from flashsale.engine.keys import MAX_BUCKETS
from flashsale.errors import FlashsaleError
from flashsale.settings import Settings
from flashsale.store.queries import Queries

create_sale = _new_sale  # every sale of this bench is made there, ``**extra`` fields included
MASTERS = 3
q = Queries("flashsale.bench")  # bench/queries/cluster.sql


@dataclass(frozen=True)
class Config:
    sales: int = 50
    purchases: int = 60_000  # per phase
    concurrency: int = 64
    persisters: int = 1
    buckets: tuple[int, ...] = (1,)
    max_seconds: float = 120.0  # a buying phase stops here even short of its purchases


def bucket_fields(buckets: int) -> dict[str, int]:
    """The creation fields of a hot drop in ``buckets`` buckets (1: a plain sale)."""
    return {} if buckets == 1 else {"buckets": buckets}


@dataclass
class Tally:
    """What the buyers got: order id -> sale id, refusals by code, first and last answer."""

    acknowledged: dict[str, str] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    started: float = 0.0  # time.monotonic()
    last_at: float = 0.0

    @property
    def seconds(self) -> float:
        return max(self.last_at - self.started, 1e-9)


async def buy(
    engine: Engine, sales: list[str], purchases: int, concurrency: int, max_seconds: float
) -> Tally:
    """``purchases`` attempts by as many distinct buyers, round robin over ``sales``,
    ``concurrency`` at a time, stopping at ``max_seconds``."""
    tally = Tally(started=time.monotonic())
    deadline = tally.started + max_seconds
    attempts = itertools.count()
    prefix = secrets.token_hex(3)  # buyers of one phase are new to every sale

    async def buyer() -> None:
        while time.monotonic() < deadline and (n := next(attempts)) < purchases:
            sale_id = sales[n % len(sales)]
            try:
                bought = await engine.purchase(sale_id, f"{prefix}-{n}")
            except FlashsaleError as refusal:
                tally.refused[refusal.code] += 1
                continue
            tally.acknowledged[bought.order.order_id] = sale_id
            tally.last_at = time.monotonic()

    await asyncio.gather(*(buyer() for _ in range(concurrency)))
    return tally


def _loads(
    delta: list[NodeSample], sales_at: dict[str, list[str]], tally: Tally
) -> list[MasterLoad]:
    bought = Counter(tally.acknowledged.values())
    return [
        MasterLoad(
            d.url,
            len(sales_at.get(d.url, [])),
            sum(bought[s] for s in sales_at.get(d.url, [])),
            d.script_calls,
            d.cpu_s,
        )
        for d in delta
    ]


@contextlib.contextmanager
def write_behind(redis_url: str, database_url: str, namespace: str, count: int) -> Iterator[None]:
    """``count`` ``flashsale persist`` processes on the cluster, each ready once its
    /metrics answers; stopped (SIGTERM: the batch in hand is finished) on leaving."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    with tempfile.TemporaryDirectory(prefix="flashsale-cluster-bench-") as logs:
        with contextlib.ExitStack() as running:
            for i in range(count):
                port = free_port()
                env = {
                    **base,
                    "FLASHSALE_REDIS_URL": redis_url,
                    "FLASHSALE_REDIS_CLUSTER": "1",
                    "FLASHSALE_NAMESPACE": namespace,
                    "FLASHSALE_DATABASE_URL": database_url,
                    "FLASHSALE_JWT_SECRET": secrets.token_urlsafe(32),  # required, unused
                    "FLASHSALE_PERSIST_METRICS_PORT": str(port),
                }
                persist = ChildProcess(
                    [sys.executable, "-m", "flashsale.cli.main", "persist"],
                    env=env,
                    log=Path(logs) / f"persist-{i}.log",
                    ready_url=f"http://127.0.0.1:{port}/metrics",
                    start_timeout_s=60,
                )
                running.enter_context(persist)
            yield


async def until_in_postgres(pool: asyncpg.Pool, count: int, timeout_s: float) -> float:
    """Poll until ``count`` orders are in PostgreSQL (the write-behind tells no one);
    returns the moment (time.monotonic()) it saw them."""
    deadline = time.monotonic() + timeout_s
    while (await pool.fetchval(q("bench_orders_stored"))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the write-behind did not store {count} orders in {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic()


def _percentile(sorted_ms: list[float], share: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(share * len(sorted_ms)))] if sorted_ms else 0.0


async def many_drops(cluster: EmbeddedRedisCluster, admin_url: str, cfg: Config) -> ManyDrops:
    namespace = f"cb{secrets.token_hex(3)}"
    masters = [m.url for m in cluster.masters]
    async with scratch_database(admin_url) as db_url:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        engine = Engine.from_url(cluster.url, cluster=True, namespace=namespace)
        try:
            sales = [f"{namespace}-d{i}" for i in range(cfg.sales)]
            sales_at: dict[str, list[str]] = {}
            for sale_id in sales:
                await create_sale(engine, sale_id)
                home = cluster.primary_of(engine.keys(sale_id).meta).url
                sales_at.setdefault(home, []).append(sale_id)
            with write_behind(cluster.url, db_url, namespace, cfg.persisters):
                before = await sample_all(masters)
                tally = await buy(engine, sales, cfg.purchases, cfg.concurrency, cfg.max_seconds)
                after = await sample_all(masters)
                stored_at = await until_in_postgres(pool, len(tally.acknowledged), 120.0)
            rows = await pool.fetch(q("bench_order_lags"))
        finally:
            await engine.aclose()
            await pool.close()
    stored = {r["order_id"] for r in rows}
    lags = sorted(float(r["lag_ms"]) for r in rows)
    return ManyDrops(
        sales=cfg.sales,
        purchases=len(tally.acknowledged),
        seconds=tally.seconds,
        masters=_loads(deltas(after, before), sales_at, tally),
        lag_ms=(_percentile(lags, 0.5), _percentile(lags, 0.99), lags[-1] if lags else 0.0),
        drained_after_s=stored_at - tally.last_at,
        in_postgres=len(stored),
        lost=len(tally.acknowledged.keys() - stored),
        refused=dict(tally.refused),
    )


async def hot_drop(cluster: EmbeddedRedisCluster, cfg: Config, buckets: int) -> HotDrop:
    """One sale bought as fast as one process can; no write-behind (scripts only)."""
    namespace = f"cb{secrets.token_hex(3)}"
    masters = [m.url for m in cluster.masters]
    engine = Engine.from_url(cluster.url, cluster=True, namespace=namespace)
    try:
        sale_id = f"{namespace}-hot"
        await create_sale(engine, sale_id, **bucket_fields(buckets))
        await buy(engine, [sale_id], cfg.concurrency, cfg.concurrency, cfg.max_seconds)  # warm
        before = await sample_all(masters)
        tally = await buy(engine, [sale_id], cfg.purchases, cfg.concurrency, cfg.max_seconds)
        after = await sample_all(masters)
    finally:
        await engine.aclose()
    return HotDrop(
        buckets,
        len(tally.acknowledged),
        tally.seconds,
        _loads(deltas(after, before), {}, tally),
        dict(tally.refused),
    )


async def measure(admin_url: str, cfg: Config) -> ClusterResult:
    with EmbeddedRedisCluster(nodes=MASTERS) as cluster:
        many = await many_drops(cluster, admin_url, cfg)
        hot = [await hot_drop(cluster, cfg, b) for b in cfg.buckets]
    return ClusterResult(many, hot)


def run(admin_url: str | None, cfg: Config) -> ClusterResult:
    """Measure on ``admin_url``'s PostgreSQL, else on a private embedded one."""
    if admin_url:
        return asyncio.run(measure(admin_url, cfg))
    from flashsale.devservers import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        return asyncio.run(measure(server.url, cfg))


def config_from(argv: list[str] | None = None) -> Config:
    """The bench's sizes from its command line (``flashsale bench`` passes its own)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sales", type=int, default=Config.sales)
    parser.add_argument("--purchases", type=int, default=Config.purchases, help="per phase")
    parser.add_argument("--concurrency", type=int, default=Config.concurrency)
    parser.add_argument(
        "--persisters", type=int, default=Config.persisters, help="flashsale persist processes"
    )
    parser.add_argument(
        "--buckets", type=int, nargs="+", default=list(Config.buckets), help="of the hot drop"
    )
    parser.add_argument("--max-seconds", type=float, default=Config.max_seconds)
    args = parser.parse_args(argv)
    if any(not 1 <= b <= MAX_BUCKETS for b in args.buckets):
        parser.error(f"--buckets: each count from 1 to {MAX_BUCKETS}")
    return Config(
        args.sales,
        args.purchases,
        args.concurrency,
        args.persisters,
        tuple(args.buckets),
        args.max_seconds,
    )


def main(argv: list[str] | None = None) -> None:
    print(report(run(Settings.from_env().database.url, config_from(argv))))


if __name__ == "__main__":
    main()
