"""The same engine code on a 3-node Redis Cluster: each sale lives in one slot."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator

import pytest
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from flashsale.devservers import EmbeddedRedisCluster, free_port
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate
from flashsale.engine.router import ClusterRouter

from .helpers import assert_invariants, make_sale


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster(nodes=3) as running:
        yield running


async def test_sales_spread_over_shards_and_stay_exact(cluster: EmbeddedRedisCluster) -> None:
    engine = Engine.from_url(cluster.url, cluster=True, namespace=f"c{secrets.token_hex(3)}")
    try:
        client = engine.redis
        assert isinstance(client, RedisCluster)
        await client.initialize()
        sale_ids = [f"shard-{i}" for i in range(8)]
        nodes = {client.get_node_from_key(engine.keys(s).meta).name for s in sale_ids}
        assert len(nodes) >= 2, "the sales should land on several nodes"
        for sale_id in sale_ids:
            k = engine.keys(sale_id)
            assert len({key_slot(key.encode()) for key in k.all_fixed()}) == 1
            await make_sale(engine, sale_id, size=50)
        results = await asyncio.gather(
            *(engine.purchase(sale_ids[i % 8], f"b{i % 300}") for i in range(1600)),
            return_exceptions=True,
        )
        sold = [r for r in results if not isinstance(r, BaseException)]
        assert Counter(p.order.sale_id for p in sold) == {s: 50 for s in sale_ids}
        refusals = {type(r).__name__ for r in results if isinstance(r, BaseException)}
        assert refusals <= {"SoldOut", "LimitReached"}, refusals
        first = sold[0].order
        await engine.cancel(first.order_id)
        await engine.tune(first.sale_id, SaleUpdate(status="paused"))
        for sale_id in sale_ids:
            await assert_invariants(engine, sale_id)
    finally:
        await engine.aclose()


async def test_the_router_finds_the_new_map_by_itself(cluster: EmbeddedRedisCluster) -> None:
    """A stale slot map (as after a fail-over): a node that answers MOVED, or an address
    nobody answers at any more, makes the router reload the map and send again the
    call that did not run; the dead address's pipeline is closed."""
    engine = Engine.from_url(cluster.url, cluster=True, namespace=f"c{secrets.token_hex(3)}")
    try:
        await make_sale(engine, "remap", size=10)
        router = engine._router
        assert isinstance(router, ClusterRouter)
        slot = key_slot(engine.keys("remap").meta.encode())
        owner = router._slots[slot]
        wrong = next(a for a in set(router._slots) if a != owner)
        router._slots = [wrong] * 16384  # MOVED
        assert (await engine.purchase("remap", "u1")).order.serial
        assert router._slots[slot] == owner
        dead = f"127.0.0.1:{free_port()}"
        router._slots = [dead] * 16384  # connection refused: the call was never sent
        assert (await engine.purchase("remap", "u2")).order.serial
        assert router._slots[slot] == owner
        await asyncio.sleep(0)  # the dead pipeline closes in the background
        assert dead not in router._pipelines
        await assert_invariants(engine, "remap")
    finally:
        await engine.aclose()


async def test_a_burst_of_reads_past_the_pool_waits_instead_of_failing(
    cluster: EmbeddedRedisCluster,
) -> None:
    """redis-py's cluster client raises MaxConnectionsError past a node's pool (and an API
    worker's connections then stayed broken): the engine's client waits for a turn, so
    300 reads at once over 8 connections per node all answer, and so do reads after."""
    engine = Engine.from_url(
        cluster.url, cluster=True, namespace=f"c{secrets.token_hex(3)}", max_connections=8
    )
    try:
        sale_id = "burst"
        await make_sale(engine, sale_id)
        order = (await engine.purchase(sale_id, "u1")).order
        reads = await asyncio.gather(*(engine.get_order(order.order_id) for _ in range(300)))
        assert all(r is not None and r.order_id == order.order_id for r in reads)
        assert (await engine.get_sale(sale_id)).reserved == 1
    finally:
        await engine.aclose()
