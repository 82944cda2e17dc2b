"""Idle cost of ``persist`` and ``timers`` with 10 and with 10,000 closed sales.

Run: ``python -m flashsale.bench.active`` (``--quick``: 10 and 1,000).

For each count, that many sales are created and closed, the write-behind drains
them (they leave the active set, engine/active.py), then an idle round is
measured: ``Persister.step`` with discovery at every step, and the timers' sale
walk (the active sales, each one's due expiries and due completions, as
``payments/timers.py`` does). The figures are the Python CPU and the Redis calls
per round; the goal is the same cost whatever the number of closed sales.

Then the idle write-behind over open sales (which never leave the active set):
Redis calls per second of ``Persister.run`` with nothing to write, polling each
stream every ``idle_sleep_s`` against one blocking read over all of them; and the
same on a private 3-master Redis Cluster, where the blocking wait is one read per
stream at once (store/cluster_wait.py), the calls summed over the masters. The reads
(XREADGROUP) are counted apart: blocking, one per stream and window.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import RedisCluster

from flashsale.bench.common import bench_redis_url, machine_line
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SaleUpdate, SerialsSpec
from flashsale.store import migrate
from flashsale.store.persist import PersistConfig, Persister

ROUNDS = 50
IDLE_WINDOW_S = 5.0
OPEN_SALES = 10


async def _closed_sales(engine: Engine, count: int) -> None:
    async def one(i: int) -> None:
        sale_id = f"c{i}"
        await engine.create_sale(
            SaleCreate(
                sale_id=sale_id,
                name="closed",
                serials=SerialsSpec(range=(1, 10)),
                start_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
        await engine.tune(sale_id, SaleUpdate(status="closed"))

    for start in range(0, count, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 200, count))))


def _calls_of(stats: dict[str, object], command: str | None = None) -> int:
    return sum(
        int(v.get("calls", 0))
        for k, v in stats.items()
        if isinstance(v, dict)
        and (k == f"cmdstat_{command}" if command else k != "cmdstat_replconf")
    )


async def _redis_calls(engine: Engine, command: str | None = None) -> int:
    """Commands (only ``command``, when named) the server (every master of a cluster) ran
    so far, these INFO included; not the replicas' acknowledgements (REPLCONF ACK, one a
    second per replica), which no client sends."""
    redis = engine.redis
    if isinstance(redis, RedisCluster):
        total = 0
        for node in redis.get_primaries():
            stats = await redis.execute_command("INFO", "commandstats", target_nodes=node)
            total += _calls_of(stats, command)
        return total
    return _calls_of(await redis.info("commandstats"), command)


async def _timers_walk(engine: Engine) -> None:
    for sale_id in await engine.active_sale_ids():
        await engine.due_expiries(sale_id)
        await engine.due_completions(sale_id)


async def measure(redis_url: str, database_url: str, count: int) -> dict[str, float]:
    """CPU µs and Redis calls per idle round of persist and of the timers' walk."""
    namespace = f"bench-active-{count}-{time.monotonic_ns()}"
    engine = Engine.from_url(redis_url, namespace=namespace, max_connections=16)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        await _closed_sales(engine, count)
        persister = Persister(
            engine.redis, pool, namespace=namespace, config=PersistConfig(discover_every_s=0.0)
        )
        deadline = time.monotonic() + 600
        while len(await engine.active_sale_ids()) > 0 and time.monotonic() < deadline:
            await persister.step()
        out: dict[str, float] = {"active": float(len(await engine.active_sale_ids()))}
        for name, action in (("persist", persister.step), ("timers", lambda: _timers_walk(engine))):
            calls0, cpu0 = await _redis_calls(engine), time.process_time()
            for _ in range(ROUNDS):
                await action()
            cpu, calls = time.process_time() - cpu0, await _redis_calls(engine) - calls0
            out[f"{name}_us"] = cpu / ROUNDS * 1e6
            out[f"{name}_calls"] = calls / ROUNDS
    finally:
        await pool.close()
        await engine.aclose()
    return out


async def measure_idle_wait(
    redis_url: str, database_url: str, *, cluster: bool = False, window_s: float = IDLE_WINDOW_S
) -> dict[str, float]:
    """Redis calls per second of an idle ``Persister.run`` over OPEN_SALES open sales,
    polling (``idle_block_s=0``) and blocking (the default), on a server or a cluster."""
    namespace = f"bench-idle-{time.monotonic_ns()}"
    engine = Engine.from_url(redis_url, namespace=namespace, max_connections=16, cluster=cluster)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    out: dict[str, float] = {}
    try:
        if isinstance(engine.redis, RedisCluster):
            await engine.redis.initialize()
        nodes = len(engine.redis.get_primaries()) if isinstance(engine.redis, RedisCluster) else 1
        for i in range(OPEN_SALES):
            await engine.create_sale(
                SaleCreate(sale_id=f"o{i}", name="open", serials=SerialsSpec(range=(1, 10)))
            )
        for mode, block_s in (("poll", 0.0), ("block", PersistConfig().idle_block_s)):
            persister = Persister(
                engine.redis, pool, namespace=namespace, config=PersistConfig(idle_block_s=block_s)
            )
            while await persister.step():  # the sales' creation events, then idle
                pass
            stop = asyncio.Event()
            task = asyncio.create_task(persister.run(stop))
            await asyncio.sleep(0.2)  # past its first round
            calls0, reads0 = await _redis_calls(engine), await _redis_calls(engine, "xreadgroup")
            await asyncio.sleep(window_s)
            out[f"{mode}_calls_per_s"] = (
                await _redis_calls(engine) - calls0 - 2 * nodes
            ) / window_s
            out[f"{mode}_reads_per_s"] = (
                await _redis_calls(engine, "xreadgroup") - reads0
            ) / window_s
            stop.set()
            await task
    finally:
        await pool.close()
        await engine.aclose()
    return out


def report_idle_wait(figures: dict[str, float], where: str = "one Redis") -> str:
    poll, block = figures["poll_calls_per_s"], figures["block_calls_per_s"]
    return (
        f"Idle write-behind over {OPEN_SALES} open sales, {where}: "
        f"{poll:.1f} Redis calls/s polling, "
        f"{block:.1f} blocking ({block / max(poll, 0.1):.3f}×; "
        f"{figures.get('block_reads_per_s', 0.0):.1f} of them XREADGROUP)"
    )


def report(figures: dict[int, dict[str, float]]) -> str:
    counts = sorted(figures)
    lines = [
        f"Idle round with N closed, drained sales ({ROUNDS} rounds, {machine_line()})",
        "",
        "| closed sales | still active | persist µs CPU | persist Redis calls | "
        "timers µs CPU | timers Redis calls |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in counts:
        f = figures[n]
        lines.append(
            f"| {n:,} | {f['active']:.0f} | {f['persist_us']:.0f} | {f['persist_calls']:.1f} | "
            f"{f['timers_us']:.0f} | {f['timers_calls']:.1f} |"
        )
    lo, hi = figures[counts[0]], figures[counts[-1]]
    lines.append(
        f"\nRedis calls per idle round, {counts[-1]:,} vs {counts[0]:,} closed sales: persist "
        f"{hi['persist_calls'] / max(lo['persist_calls'], 1):.2f}×, timers "
        f"{hi['timers_calls'] / max(lo['timers_calls'], 1):.2f}× (goal: 1×, flat)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from flashsale.bench.common import bench_database_url
    from flashsale.devservers import EmbeddedRedisCluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 closed sales")
    args = parser.parse_args(argv)
    counts = (10, 1_000) if args.quick else (10, 10_000)
    with bench_redis_url() as redis_url, bench_database_url() as database_url:
        asyncio.run(migrate.upgrade(database_url))
        figures = {n: asyncio.run(measure(redis_url, database_url, n)) for n in counts}
        idle = asyncio.run(measure_idle_wait(redis_url, database_url))
        with EmbeddedRedisCluster(nodes=3) as cluster:
            on_cluster = asyncio.run(measure_idle_wait(cluster.url, database_url, cluster=True))
    print(report(figures))
    print(report_idle_wait(idle))
    print(report_idle_wait(on_cluster, "a 3-master Redis Cluster"))


if __name__ == "__main__":
    main()
