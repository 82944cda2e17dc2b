"""The write-behind and the audit on a 3-node Redis Cluster: one group per sale, per slot."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
from redis.asyncio import RedisCluster

from flashsale.bench.failover import node_args
from flashsale.connect import open_engine
from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine.engine import Engine
from flashsale.settings import (
    DatabaseSettings,
    PersistSettings,
    RedisSettings,
    Settings,
)
from flashsale.store.audit import audit_sale
from flashsale.store.cli import run_audit, run_persist, run_recover
from flashsale.store.persist import PersistConfig, Persister

from .store_helpers import make_sale


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    # masters with replicas, durable as the settings default to, each with its AOF
    durable = (*node_args("durable"), "--appendonly", "yes")
    with EmbeddedRedisCluster(nodes=3, replicas=1, extra_args=durable) as running:
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


async def test_persist_audit_and_recover_commands_take_the_cluster_from_the_settings(
    cluster: EmbeddedRedisCluster, migrated_database_url: str
) -> None:
    """FLASHSALE_REDIS_CLUSTER reaches the commands, not only the API: `persist`, `audit`
    and `recover` open a RedisCluster; `recover` checks every master's AOF (a forced
    rewrite on each) and reopens the sales it paused once their audits are clean."""
    namespace = f"c{secrets.token_hex(3)}"
    settings = Settings(
        redis=RedisSettings(url=cluster.url, cluster=True, namespace=namespace),
        database=DatabaseSettings(url=migrated_database_url),
        persist=PersistSettings(batch_size=50),
    )
    engine = await open_engine(settings)
    stop = asyncio.Event()
    persisting = asyncio.create_task(run_persist(settings, stop=stop))
    try:
        client = engine.redis
        assert isinstance(client, RedisCluster)
        await client.initialize()
        by_node: dict[str, str] = {}  # one sale on each shard
        for i in range(100):
            sale_id = f"{namespace}-cmd-{i}"
            by_node.setdefault(client.get_node_from_key(engine.keys(sale_id).events).name, sale_id)
        sale_ids = list(by_node.values())
        assert len(sale_ids) == 3
        for sale_id in sale_ids:
            await make_sale(engine, sale_id, size=60)
            await asyncio.gather(*(engine.purchase(sale_id, f"b{i}") for i in range(60)))
        deadline = asyncio.get_running_loop().time() + 60
        for sale_id in sale_ids:
            report = await run_audit(settings, sale_id)
            while report.persisted < 60 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                report = await run_audit(settings, sale_id)
            assert report.ok and report.persisted == 60, (sale_id, report)
        recovered = await run_recover(settings, force_rewrite=True)
        assert recovered.ok, recovered
        assert len(recovered.nodes) == 3 and all(n.rewritten for n in recovered.nodes)
        assert {s.sale_id for s in recovered.sales} >= set(sale_ids)
        reopened = {s.sale_id for s in recovered.sales if s.was_open and s.reopened}
        assert reopened >= set(sale_ids), "paused, audited, reopened"
        for sale_id in sale_ids:
            assert (await engine.get_sale(sale_id)).status != "paused"
    finally:
        stop.set()
        await persisting
        await engine.aclose()
