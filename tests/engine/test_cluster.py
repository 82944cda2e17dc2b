"""The same engine code on a 3-node Redis Cluster: each sale lives in one slot."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator

import pytest
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate

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
