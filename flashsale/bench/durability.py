"""Cost of the durability modes: engine purchases/s on private Redis servers.

    python -m flashsale.bench.durability [--orders 30000] [--concurrency 64 512]

Starts redis-server on loopback in a scratch directory on disk, once per mode:
- ``fast``: no AOF (and no RDB snapshots): a crash loses what was not persisted
  to PostgreSQL by the write-behind and the hot state of open orders;
- ``everysec``: AOF fsynced once a second: a crash loses up to ~1 s of writes;
- ``always``: AOF fsynced before every reply (Redis 7: a batch of commands read in
  one event-loop turn shares one fsync): nothing acknowledged is lost;
- ``always+WAIT``: ``always`` with one replica, the engine built with
  ``wait_replicas=1`` (its auto-pipeline appends one ``WAIT 1 <ms>`` to each
  pipelined batch, so no purchase is answered before the replica has it).

Purchases go through ``Engine.purchase`` (one EVALSHA each, auto-pipelined) with
N concurrent buyers. Prints a Markdown table: purchases/s, p50 and p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flashsale.devservers import EmbeddedRedis
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec


async def measure(
    url: str, orders: int, concurrency: int, wait_replicas: int
) -> tuple[float, float, float]:
    engine = Engine.from_url(
        url, namespace="bench", max_connections=32, wait_replicas=wait_replicas
    )
    sale_id = f"d{time.monotonic_ns()}"
    await engine.create_sale(
        SaleCreate(
            sale_id=sale_id,
            name="durability bench",
            serials=SerialsSpec(range=(1, orders)),
            start_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    )
    latencies: list[float] = []
    next_user = 0

    async def buyer() -> None:
        nonlocal next_user
        while next_user < orders:
            user = next_user
            next_user += 1
            t0 = time.perf_counter()
            await engine.purchase(sale_id, f"u{user}")
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(buyer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await engine.aclose()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return orders / elapsed, p50, p99


def run(orders: int, concurrencies: list[int]) -> None:
    rows = [
        "| mode | buyers | purchases/s | p50 ms | p99 ms | vs fast |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    # (name, appendonly, appendfsync, with a replica); appendfsync means nothing without AOF
    modes: list[tuple[str, bool, str, bool]] = [
        ("fast (no AOF)", False, "always", False),
        ("AOF everysec", True, "everysec", False),
        ("AOF always", True, "always", False),
        ("AOF always + WAIT 1 replica", True, "always", True),
    ]
    for concurrency in concurrencies:
        base = 0.0
        for name, appendonly, appendfsync, with_replica in modes:
            # On disk, not tmpfs: an fsync must cost what it costs in production.
            root = Path(tempfile.mkdtemp(prefix="fs-dur-", dir="/var/tmp"))
            try:
                with ExitStack() as servers:
                    primary = servers.enter_context(
                        EmbeddedRedis(
                            appendonly=appendonly, appendfsync=appendfsync, workdir=root / "p"
                        )
                    )
                    if with_replica:
                        replica = servers.enter_context(
                            EmbeddedRedis(
                                appendonly=appendonly,
                                appendfsync=appendfsync,
                                workdir=root / "r",
                                replica_of=primary,
                            )
                        )
                        replica.wait_in_sync()
                    rate, p50, p99 = asyncio.run(
                        measure(primary.url, orders, concurrency, int(with_replica))
                    )
            finally:
                shutil.rmtree(root, ignore_errors=True)
            base = base or rate
            rows.append(
                f"| {name} | {concurrency} | {rate:,.0f} | {p50:.2f} | {p99:.2f} "
                f"| {rate / base:.2f} |"
            )
            print(rows[-1], flush=True)
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 512])
    args = parser.parse_args()
    run(args.orders, args.concurrency)


if __name__ == "__main__":
    main()
