"""Failover on a Redis Cluster: seconds without a sale and acknowledged orders lost.

    python -m flashsale.bench.failover [--kills 3] [--modes fast durable]

A private 3-master cluster, two replicas per master, ``cluster-node-timeout`` 1 s.
Buyers keep buying from one hot sale through ``Engine.purchase``; the master that
holds the sale's slot is SIGKILLed, a replica takes over, the killed node is started
again (it rejoins as a replica), and the next kill follows: ``--kills`` in a row.
Per kill: the longest stretch without an acknowledged purchase, from the kill until
buying runs again. At the end,
every acknowledged order is looked up: those missing were lost.

- ``fast``: asynchronous replication; a master killed before its replica got the
  last writes loses them (acknowledged orders may be lost).
- ``durable``: each master requires a replica in sync before a write
  (``min-replicas-to-write 1``) and the engine WAITs for it per batch before it
  answers, so what was acknowledged is on a replica the failover can promote.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, SaleCreate, SerialsSpec
from flashsale.engine.transport import TransportOptions
from flashsale.errors import FlashsaleError

Mode = Literal["fast", "durable"]
FAST_FAILOVER = ("--cluster-node-timeout", "1000")
DURABLE_WRITES = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")


def node_args(mode: Mode) -> tuple[str, ...]:
    """The nodes' configuration for a durability mode (every node: replicas get promoted)."""
    return FAST_FAILOVER + (DURABLE_WRITES if mode == "durable" else ())


@dataclass
class Buyers:
    """Buyers that keep buying (each user once) until stopped; what was acknowledged, when."""

    engine: Engine
    sale_id: str
    acknowledged: list[Order] = field(default_factory=list)
    acknowledged_at: list[float] = field(default_factory=list)  # time.monotonic()
    refused: dict[str, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    _next: int = 0

    async def run(self, max_attempts: int) -> None:
        while not self.stop.is_set() and self._next < max_attempts:
            self._next += 1
            try:
                bought = await self.engine.purchase(self.sale_id, f"buyer-{self._next}")
            except FlashsaleError as refusal:
                self.refused[refusal.code] = self.refused.get(refusal.code, 0) + 1
                await asyncio.sleep(0.01)  # a refused buyer tries again a little later
                continue
            self.acknowledged.append(bought.order)
            self.acknowledged_at.append(time.monotonic())
            async with self.progress:
                self.progress.notify_all()

    async def until_acknowledged(self, count: int, timeout_s: float) -> None:
        async with self.progress:
            await asyncio.wait_for(
                self.progress.wait_for(lambda: len(self.acknowledged) >= count), timeout_s
            )

    def longest_silence(self, start: float, end: float) -> float:
        """The longest stretch between ``start`` and ``end`` without an acknowledgment."""
        moments = [start, *(t for t in self.acknowledged_at if start < t <= end), end]
        return max(b - a for a, b in itertools.pairwise(moments))

    async def lost(self) -> list[Order]:
        """Acknowledged orders the cluster no longer has."""
        missing = []
        for order in self.acknowledged:
            if await self.engine.get_order(order.order_id) is None:
                missing.append(order)
        return missing


@dataclass(frozen=True)
class FailoverResult:
    mode: Mode
    gaps_s: list[float]
    acknowledged: int
    lost: int
    refused: dict[str, int]


def engine_for(cluster: EmbeddedRedisCluster, mode: Mode, namespace: str) -> Engine:
    options = TransportOptions(durability=mode, timeout_ms=1000)
    return Engine.from_url(cluster.url, cluster=True, namespace=namespace, transport=options)


async def measure(mode: Mode, kills: int, per_kill: int = 300) -> FailoverResult:
    with EmbeddedRedisCluster(nodes=3, replicas=2, extra_args=node_args(mode)) as cluster:
        namespace = f"fo{secrets.token_hex(3)}"
        engine = engine_for(cluster, mode, namespace)
        try:
            sale_id = f"{namespace}-hot"
            await engine.create_sale(
                SaleCreate(
                    sale_id=sale_id,
                    name="failover bench",
                    serials=SerialsSpec(range=(1, per_kill * (kills + 2) * 4)),
                )
            )
            buyers = Buyers(engine, sale_id)
            workers = [
                asyncio.create_task(buyers.run(per_kill * (kills + 2) * 3)) for _ in range(16)
            ]
            gaps: list[float] = []
            try:
                await buyers.until_acknowledged(per_kill, timeout_s=60)
                for _ in range(kills):
                    victim = cluster.primary_of(engine.keys(sale_id).meta)
                    killed_at = time.monotonic()
                    victim.kill()
                    await asyncio.to_thread(cluster.wait_failover, victim)
                    await buyers.until_acknowledged(len(buyers.acknowledged) + per_kill, 60)
                    gaps.append(buyers.longest_silence(killed_at, time.monotonic()))
                    await asyncio.to_thread(victim.start)  # it rejoins as a replica
            finally:
                buyers.stop.set()
                await asyncio.gather(*workers)
            return FailoverResult(
                mode, gaps, len(buyers.acknowledged), len(await buyers.lost()), buyers.refused
            )
        finally:
            await engine.aclose()


def report(results: list[FailoverResult]) -> str:
    lines = [
        "| mode | kills | seconds without a sale (each kill) | acknowledged | lost | refused |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in results:
        gaps = " / ".join(f"{g:.1f}" for g in r.gaps_s)
        refused = ", ".join(f"{k} {v}" for k, v in sorted(r.refused.items())) or "none"
        lines.append(
            f"| {r.mode} | {len(r.gaps_s)} | {gaps} | {r.acknowledged} | {r.lost} | {refused} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument(
        "--modes", nargs="+", choices=("fast", "durable"), default=["fast", "durable"]
    )
    args = parser.parse_args()
    results = [asyncio.run(measure(mode, args.kills)) for mode in args.modes]
    print(report(results))


if __name__ == "__main__":
    main()
