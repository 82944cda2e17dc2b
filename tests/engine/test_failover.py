"""A master killed mid-sale on a Redis Cluster with replicas: a replica takes over, the
engine finds it by itself, purchases resume, and in durable mode no acknowledged order
is lost (docs/design.md, "Failover"; the figures: ``python -m flashsale.bench.failover``)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from flashsale.bench.failover import Buyers, engine_for, node_args
from flashsale.devservers import EmbeddedRedisCluster

from .helpers import assert_invariants, make_sale


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    # two replicas per master, so the promoted one still has a replica to write to
    with EmbeddedRedisCluster(nodes=3, replicas=2, extra_args=node_args("durable")) as running:
        yield running


async def test_a_killed_master_fails_over_and_no_acknowledged_order_is_lost(
    cluster: EmbeddedRedisCluster,
) -> None:
    namespace = f"f{secrets.token_hex(3)}"
    engine = engine_for(cluster, "durable", namespace)
    try:
        # the sale on the seed node (the URL the engine was given): once it is killed the
        # engine must find the new map through the other nodes it learnt of
        sale_id = next(
            f"{namespace}-hot-{i}"
            for i in range(1000)
            if cluster.primary_of(engine.keys(f"{namespace}-hot-{i}").meta) is cluster.servers[0]
        )
        await make_sale(engine, sale_id, size=20_000)
        victim = cluster.servers[0]

        buyers = Buyers(engine, sale_id)
        workers = [asyncio.create_task(buyers.run(max_attempts=15_000)) for _ in range(16)]
        try:
            await buyers.until_acknowledged(300, timeout_s=60)
            victim.kill()
            before_kill = len(buyers.acknowledged)
            await asyncio.to_thread(cluster.wait_failover, victim)
            # purchases resume by themselves on the promoted replica
            await buyers.until_acknowledged(before_kill + 300, timeout_s=60)
        finally:
            buyers.stop.set()
            await asyncio.gather(*workers)

        assert set(buyers.refused) <= {"engine_unavailable", "outcome_unknown"}, buyers.refused
        assert await buyers.lost() == [], "an acknowledged order was lost in the failover"
        await assert_invariants(engine, sale_id)
    finally:
        await engine.aclose()
