"""Purchase rate through the engine against redis-benchmark running the same script.

Run: ``flashsale bench engine`` (or ``python -m flashsale.bench.engine``).

Baselines in the same run: ``redis-benchmark -c 50`` sending EVALSHA of the
purchase script (``-P 1`` and ``-P 16``), each buyer a random id so every call
takes the full path (checks, draw, order, expiry, event). The engine side runs
``concurrency`` asyncio tasks in one Python process and reports its rate and the
Python CPU it spent per purchase.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from flashsale.bench.common import Figure, bench_redis_url, machine_line
from flashsale.engine import scripts
from flashsale.engine.engine import Engine
from flashsale.engine.keys import sales_registry
from flashsale.engine.models import FAR_FUTURE_MS, SaleCreate, SerialsSpec

SALE_SIZE = 10_000_000  # a range: never sells out during the bench, costs no memory


async def _new_sale(engine: Engine, sale_id: str, **extra: Any) -> None:
    """An open sale that never sells out; ``extra`` goes into ``SaleCreate`` as it is
    (bench/cluster.py: ``buckets=B`` once bucketed drops exist; an unknown field is
    refused loudly)."""
    await engine.create_sale(
        SaleCreate(
            sale_id=sale_id,
            name="bench",
            serials=SerialsSpec(range=(1, SALE_SIZE)),
            start_at=datetime.now(UTC) - timedelta(minutes=1),
            **extra,
        )
    )


async def _drop(engine: Engine, sale_id: str) -> None:
    """Remove a bench sale: its keys and its registry entry (an empty set disappears)."""
    keys = engine.keys(sale_id)
    await engine.redis.unlink(*keys.all_fixed())
    await engine.redis.srem(sales_registry(engine.namespace), sale_id)
    batch: list[bytes] = []
    async for key in engine.redis.scan_iter(match=f"{keys.tag}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await engine.redis.unlink(*batch)
            batch.clear()
    if batch:
        await engine.redis.unlink(*batch)


def redis_benchmark(url: str, engine: Engine, sale_id: str, requests: int, pipeline: int) -> float:
    """Requests per second of redis-benchmark EVALSHA-ing the purchase script."""
    script = scripts.load("purchase")
    k = engine.keys(sale_id)
    parsed = urlparse(url)
    cmd = [
        shutil.which("redis-benchmark") or "redis-benchmark",
        "-h",
        parsed.hostname or "127.0.0.1",
        "-p",
        str(parsed.port or 6379),
        "-c",
        "50",
        "-n",
        str(requests),
        "-P",
        str(pipeline),
        "-r",
        "1000000000",
        "-q",
        "EVALSHA",
        script.sha,
        str(script.num_keys),
        *k.purchase_keys(),
        # purchase-10's ARGV as the engine sends it without an Idempotency-Key
        sale_id,
        "bench-__rand_int__",
        "",
        str(engine.clock()),
        # a 20-hex order id per call (redis-benchmark fills in 12 random digits)
        f"{sale_id}.00000000__rand_int__",
        str(FAR_FUTURE_MS),  # a deadline, as the engine always sends
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    match = re.search(r"([\d.]+) requests per second", out.replace(",", ""))
    if not match:
        raise RuntimeError(f"unexpected redis-benchmark output: {out!r}")
    return float(match.group(1))


async def engine_rate(
    engine: Engine, sale_id: str, requests: int, concurrency: int
) -> tuple[float, float]:
    """(purchases per second, Python CPU microseconds per purchase) from one process."""
    per_task = requests // concurrency
    tag = time.perf_counter_ns()  # fresh buyers on every call

    async def buyer(task: int) -> None:
        for i in range(per_task):
            await engine.purchase(sale_id, f"b{tag}{task}-{i}")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(buyer(t) for t in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * concurrency
    return done / wall, cpu / done * 1e6


async def run(url: str, runs: int, requests: int, concurrency: int) -> dict[str, Figure]:
    engine = Engine.from_url(url, namespace="bench", max_connections=16)
    await engine.redis.script_load(scripts.load("purchase").source)
    rb1: list[float] = []
    rb16: list[float] = []
    rates: list[float] = []
    cpu: list[float] = []
    try:
        for i in range(runs):
            for label, action in (("rb1", 1), ("rb16", 16), ("engine", 0)):
                sale_id = f"bench-{label}-{i}"
                await _new_sale(engine, sale_id)
                try:
                    if action:
                        rate = await asyncio.to_thread(
                            redis_benchmark, url, engine, sale_id, requests, action
                        )
                        (rb1 if action == 1 else rb16).append(rate)
                    else:
                        rate, us = await engine_rate(engine, sale_id, requests, concurrency)
                        rates.append(rate)
                        cpu.append(us)
                finally:
                    await _drop(engine, sale_id)
    finally:
        await engine.aclose()
    return {
        "redis_benchmark_p1": Figure(tuple(rb1)),
        "redis_benchmark_p16": Figure(tuple(rb16)),
        "engine": Figure(tuple(rates)),
        "engine_cpu_us": Figure(tuple(cpu)),
    }


def report(figures: dict[str, Figure], requests: int, concurrency: int) -> str:
    rb1 = figures["redis_benchmark_p1"].median
    rows = [
        ("redis-benchmark -c 50 -P 1, EVALSHA purchase", figures["redis_benchmark_p1"]),
        ("redis-benchmark -c 50 -P 16, EVALSHA purchase", figures["redis_benchmark_p16"]),
        (f"engine, 1 Python process, {concurrency} tasks", figures["engine"]),
    ]
    lines = [
        f"Purchase path, {requests:,} purchases per run, medians (spread), {machine_line()}",
        "",
        "| layer | purchases/s | ratio to redis-benchmark -P 1 |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {fig.show()} | {fig.median / rb1:.2f} |" for name, fig in rows]
    cpu = figures["engine_cpu_us"].show(" µs", 1)
    lines += ["", f"Engine Python CPU per purchase: {cpu}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args(argv)
    with bench_redis_url() as url:
        figures = asyncio.run(run(url, args.runs, args.requests, args.concurrency))
    print(report(figures, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
