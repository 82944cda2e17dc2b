"""One hot drop on a private 3-master Redis Cluster with 1, 2 and 3 buckets: purchases/s,
each master's share of the scripts, its script rate and its CPU per purchase.

Every run sells a fresh drop to the last serial (buyers of flashsale/bench/failover.py,
each buyer once, one Python process); the drop's id is chosen so that its B buckets sit
on B different masters. A master's share and CPU come from its own INFO (commandstats'
EVALSHA calls, used_cpu_user + used_cpu_sys) before and after the run. On a machine with
fewer cores than masters the cluster cannot beat one Redis: the CPU per purchase of the
busiest master is the figure that projects to more cores (docs/design.md, "Bucketed
drops"), not the rate.

    python -m flashsale.bench.buckets [--orders 20000] [--runs 3] [--buckets 1 2 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flashsale.bench.common import Figure, machine_line
from flashsale.bench.failover import Buyers
from flashsale.devservers import EmbeddedRedis, EmbeddedRedisCluster
from flashsale.engine import buckets
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec

CONCURRENCY = 200  # purchases in flight from the one process


@dataclass(frozen=True)
class Run:
    rate: float  # purchases/s
    shares: list[float]  # each master's share of the EVALSHA calls (busiest master first)
    scripts_per_s: list[float]  # each master's EVALSHA calls per second
    cpu_us: list[float]  # each master's CPU per purchase (µs)


def _sample(master: EmbeddedRedis) -> tuple[int, float]:
    """(EVALSHA calls so far, CPU seconds so far) of one master, from its INFO."""
    with master.client() as client:
        stats: Any = client.info("commandstats")
        cpu: Any = client.info("cpu")
    calls = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _spread_id(cluster: EmbeddedRedisCluster, engine: Engine, count: int) -> str:
    """A sale id whose ``count`` buckets are served by ``count`` different masters."""
    for _ in range(1000):
        sale_id = f"hot-{secrets.token_hex(3)}"
        ports = {
            cluster.primary_of(engine.keys(slot).meta).port
            for slot in buckets.slots(sale_id, count)
        }
        if len(ports) == count:
            return sale_id
    raise RuntimeError("no sale id spreads over the masters")


async def measure(cluster: EmbeddedRedisCluster, count: int, orders: int) -> Run:
    engine = Engine.from_url(cluster.url, cluster=True, namespace=f"bb{secrets.token_hex(3)}")
    try:
        sale_id = _spread_id(cluster, engine, count)
        spec = SaleCreate(
            sale_id=sale_id, name="bucket bench", serials=SerialsSpec(range=(1, orders))
        )
        spec.buckets = count
        await engine.create_sale(spec)
        buyers = Buyers(engine, sale_id)
        before = [_sample(m) for m in cluster.masters]
        started = time.perf_counter()
        workers = [asyncio.create_task(buyers.run(orders * 2)) for _ in range(CONCURRENCY)]
        try:
            await buyers.until_acknowledged(orders, timeout_s=300)
        finally:
            elapsed = time.perf_counter() - started
            buyers.stop.set()
            await asyncio.gather(*workers)
        after = [_sample(m) for m in cluster.masters]
        # busiest master first: which master holds the drop changes from run to run
        deltas = sorted(
            ((a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)),
            reverse=True,
        )
        calls, cpu = [d[0] for d in deltas], [d[1] for d in deltas]
        return Run(
            rate=len(buyers.acknowledged) / elapsed,
            shares=[c / max(sum(calls), 1) for c in calls],
            scripts_per_s=[c / elapsed for c in calls],
            cpu_us=[s * 1e6 / len(buyers.acknowledged) for s in cpu],
        )
    finally:
        await engine.aclose()


def _per_master(runs: list[Run], pick: Any, digits: int = 0, unit: str = "") -> str:
    """One figure per master (median and spread over the runs), busiest first."""
    masters = range(len(runs[0].shares))
    figures = [Figure(tuple(pick(r)[m] for r in runs)) for m in masters]
    return " · ".join(f.show(unit, digits) for f in figures)


def report(results: dict[int, list[Run]]) -> str:
    lines = [
        f"One hot drop on a 3-master cluster ({machine_line()}; medians of "
        f"{len(next(iter(results.values())))} runs, spread in brackets)",
        "",
        "| buckets | purchases/s | share of scripts per master (busiest first) "
        "| scripts/s per master | CPU per purchase per master (µs) |",
        "|---:|---:|---|---|---|",
    ]
    for count, runs in results.items():
        rate = Figure(tuple(r.rate for r in runs)).show()
        shares = _per_master(runs, lambda r: [100 * s for s in r.shares], 0, " %")
        lines.append(
            f"| {count} | {rate} | {shares} | {_per_master(runs, lambda r: r.scripts_per_s)} "
            f"| {_per_master(runs, lambda r: r.cpu_us, 1)} |"
        )
    return "\n".join(lines)


async def run_all(counts: list[int], orders: int, runs: int) -> dict[int, list[Run]]:
    results: dict[int, list[Run]] = {count: [] for count in counts}
    with EmbeddedRedisCluster(nodes=3) as cluster:
        for _ in range(runs):  # interleaved: a slow moment of the machine hits every B
            for count in counts:
                results[count].append(await measure(cluster, count, orders))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--buckets", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(report(asyncio.run(run_all(args.buckets, args.orders, args.runs))))


if __name__ == "__main__":
    main()
