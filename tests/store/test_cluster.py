"""The write-behind and the audit on a 3-node Redis Cluster: one group per sale, per slot."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
from redis.asyncio import RedisCluster

from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine.engine import Engine
from flashsale.store.audit import audit_sale
from flashsale.store.persist import PersistConfig, Persister

from .store_helpers import make_sale


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster(nodes=3) as running:
        yield running


async def test_persist_and_audit_sales_spread_over_shards(
    cluster: EmbeddedRedisCluster, pg_pool: asyncpg.Pool
) -> None:
    namespace = f"c{secrets.token_hex(3)}"
    engine = Engine.from_url(cluster.url, cluster=True, namespace=namespace)
    try:
        client = engine.redis
        assert isinstance(client, RedisCluster)
        await client.initialize()
        sale_ids = [f"{namespace}-shard-{i}" for i in range(6)]
        nodes = {client.get_node_from_key(engine.keys(s).events).name for s in sale_ids}
        assert len(nodes) >= 2
        for sale_id in sale_ids:
            await make_sale(engine, sale_id, size=200)
        results = await asyncio.gather(
            *(engine.purchase(sale_ids[i % 6], f"b{i}") for i in range(1500)),
            return_exceptions=True,
        )
        sold = [r.order for r in results if not isinstance(r, BaseException)]
        assert len(sold) == 1200
        await engine.cancel(sold[0].order_id)
        persister = Persister(
            client, pg_pool, namespace=namespace, config=PersistConfig(batch_size=150)
        )
        await persister.drain(timeout_s=60)
        for sale_id in sale_ids:
            report = await audit_sale(client, pg_pool, namespace, sale_id)
            assert report.ok, (sale_id, report.violations)
            assert report.persisted == 200 and report.lag == 0
    finally:
        await engine.aclose()
