"""The idle write-behind on a Redis Cluster blocks on every sale's stream at once (one read
per stream, cluster_wait.py), so an event on any master wakes it; it costs far fewer Redis
calls than polling; and a master killed while it waits does not stop it.

The pauses are set far longer than the tests may take (a poll every 30 s, a blocking read
of 20 s, no discovery, reclaim or trim for a minute): an order reaches PostgreSQL within
seconds only because a blocking read on its stream returns when it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from redis.asyncio import RedisCluster
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.bench.active import OPEN_SALES, measure_idle_wait
from flashsale.bench.failover import engine_for, node_args
from flashsale.connect import open_redis
from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine.engine import Engine
from flashsale.engine.keys import PERSIST_GROUP
from flashsale.engine.models import Order
from flashsale.errors import FlashsaleError
from flashsale.settings import Settings
from flashsale.store.persist import PersistConfig, Persister

from .store_helpers import ASLEEP, make_sale, persisted


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    # a replica per master and a 1 s node timeout, for the kill; asynchronous replication
    # (the write-behind's own promise does not rest on the durable mode)
    with EmbeddedRedisCluster(nodes=3, replicas=1, extra_args=node_args("fast")) as running:
        yield running


@pytest.fixture
async def engine(cluster: EmbeddedRedisCluster) -> AsyncIterator[Engine]:
    eng = engine_for(cluster, "fast", f"ci{secrets.token_hex(3)}")
    assert isinstance(eng.redis, RedisCluster)
    await eng.redis.initialize()
    try:
        yield eng
    finally:
        await eng.aclose()


async def _sale_on_each_master(
    engine: Engine, cluster: EmbeddedRedisCluster, per_master: int = 1
) -> list[str]:
    """``per_master`` new sales on each master serving now (a failover may have moved
    them), master by master."""
    by_port: dict[int, list[str]] = {}
    for i in range(500):
        sale_id = f"{engine.namespace}-s{i}"
        on = by_port.setdefault(cluster.primary_of(engine.keys(sale_id).events).port, [])
        if len(on) < per_master:
            on.append(sale_id)
    assert sorted(len(on) for on in by_port.values()) == [per_master] * 3
    sales = [by_port[port][k] for k in range(per_master) for port in sorted(by_port)]
    for sale_id in sales:
        await make_sale(engine, sale_id)
    return sales


def _off_the_seed(engine: Engine, cluster: EmbeddedRedisCluster, sales: list[str]) -> str:
    """A sale whose master is not the node the clients were given (the seed)."""
    return next(
        s for s in sales if cluster.primary_of(engine.keys(s).events) is not cluster.servers[0]
    )


async def _buy(engine: Engine, sale_id: str, user: str, timeout_s: float = 30.0) -> Order:
    """A purchase, tried again while the cluster fails over (engine_unavailable)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return (await engine.purchase(sale_id, user)).order
        except FlashsaleError as refusal:
            if refusal.code not in {"engine_unavailable", "outcome_unknown"}:
                raise
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _running(persister: Persister) -> AsyncIterator[asyncio.Task[None]]:
    while await persister.step():  # the creation events
        pass
    task = asyncio.create_task(persister.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_event_on_any_master_wakes_the_blocked_cluster_write_behind(
    cluster: EmbeddedRedisCluster, engine: Engine, pg_pool: asyncpg.Pool
) -> None:
    sales = await _sale_on_each_master(engine, cluster)
    persister = Persister(engine.redis, pg_pool, namespace=engine.namespace, config=ASLEEP)
    async with _running(persister) as task:
        # every master, not only the first stream; then the same sale twice in a row
        # (its read blocks again at once after handing over its first entry)
        for n, sale_id in enumerate((sales[2], sales[0], sales[1], sales[1])):
            order = await _buy(engine, sale_id, f"buyer-{n}")
            assert await persisted(pg_pool, order.order_id, 10.0), (
                f"the order of {sale_id} waited for the next poll"
            )
        assert not task.done()


async def test_a_stop_ends_the_cluster_wait_once_its_reads_have_run_out(
    cluster: EmbeddedRedisCluster, engine: Engine, pg_pool: asyncpg.Pool
) -> None:
    """SIGTERM while waiting: no read is cancelled, each ends with its block (1 s here)
    and the consumer returns; nothing hangs on a reader that already handed over."""
    sales = await _sale_on_each_master(engine, cluster)
    config = PersistConfig(idle_block_s=1.0, discover_every_s=60.0, trim_every_s=60.0)
    persister = Persister(engine.redis, pg_pool, namespace=engine.namespace, config=config)
    while await persister.step():
        pass
    stop = asyncio.Event()
    task = asyncio.create_task(persister.run(stop))
    order = await _buy(engine, sales[1], "before-the-stop")
    assert await persisted(pg_pool, order.order_id, 10.0)
    stop.set()
    await asyncio.wait_for(task, 5.0)


async def test_streams_over_a_nodes_cap_are_read_by_a_poll_round_after_each_window(
    cluster: EmbeddedRedisCluster,
    engine: Engine,
    pg_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each blocked read holds a connection: with 4 connections per node, 2 streams of a
    node are waited on and the other 2 are read by the poll round that ends each window.
    Blocking on all 4 would leave the writer's XACKs no connection (MaxConnectionsError)."""
    caplog.set_level(logging.WARNING, logger="flashsale.persist")
    sales = await _sale_on_each_master(engine, cluster, per_master=4)
    client = RedisCluster.from_url(cluster.url, max_connections=4)
    await client.initialize()
    config = PersistConfig(idle_block_s=1.0, discover_every_s=60.0, trim_every_s=60.0)
    persister = Persister(client, pg_pool, namespace=engine.namespace, config=config)
    try:
        async with _running(persister) as task:
            orders = [await _buy(engine, sale_id, f"capped-{i}") for i, sale_id in enumerate(sales)]
            for order in orders:
                assert await persisted(pg_pool, order.order_id, 10.0), order.sale_id
            assert not task.done()
        assert [r.getMessage() for r in caplog.records if r.name == "flashsale.persist"] == []
    finally:
        await client.aclose()


async def test_an_idle_cluster_write_behind_makes_far_fewer_calls_than_polling(
    cluster: EmbeddedRedisCluster, migrated_database_url: str
) -> None:
    figures = await measure_idle_wait(
        cluster.url, migrated_database_url, cluster=True, window_s=3.0
    )
    poll, block = figures["poll_calls_per_s"], figures["block_calls_per_s"]
    # polling reads each of the 10 streams every 20 ms; blocking, each read lasts ~1 s
    assert poll > 10 * OPEN_SALES, figures
    # the waits are whole windows of ~1 s (they end at the discovery, and a reclaim due
    # within half a window is done at its end): 2 or 3 windows' reads in 3 s, one per
    # stream each (4 would be 13.3/s; before, the first reclaim cost a round's reads and
    # cut a window short: 13.3/s at least)
    assert figures["block_reads_per_s"] <= 1.2 * OPEN_SALES, figures
    # and besides: a discovery per window (2 calls), the first reclaim (one XAUTOCLAIM per
    # stream) and retirement check (one HMGET per stream): 13-19/s over 3 s
    assert block < 2.4 * OPEN_SALES, figures


def _persist_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "flashsale.persist"]


async def _warned_of(
    caplog: pytest.LogCaptureFixture, key: str, timeout_s: float
) -> logging.LogRecord:
    """The first write-behind warning naming ``key``, once logged."""
    deadline = time.monotonic() + timeout_s
    while True:
        named = [r for r in _persist_warnings(caplog) if key in r.getMessage()]
        if named:
            return named[0]
        assert time.monotonic() < deadline, f"no failed read of {key} was logged"
        await asyncio.sleep(0.05)


async def test_a_frozen_master_fails_its_reads_within_the_deadline_and_holds_back_no_other(
    cluster: EmbeddedRedisCluster,
    engine: Engine,
    pg_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The persist process's client (``open_redis``) reads with FLASHSALE_REDIS_TIMEOUT_MS
    as its deadline (1 s here) and its idle waits stay below it: idle for twice the
    deadline with 20-s waits asked for, no read times out. A master that stops answering
    (SIGSTOP) fails the read waiting on it within about the deadline (not the wait's 2-s
    grace past its block, nor redis-py's 5 s), and any read sent to it after; the other
    masters' orders are written all the same, within seconds (no reclaim: it is a minute
    away), and once a replica has taken over, the frozen master's sale goes on."""
    caplog.set_level(logging.WARNING, logger="flashsale.persist")
    deadline_s = 1.0
    sales = await _sale_on_each_master(engine, cluster)
    frozen_sale = _off_the_seed(engine, cluster, sales)
    frozen_key = engine.keys(frozen_sale).events
    frozen = cluster.primary_of(frozen_key)
    settings = Settings.from_env(
        {
            "FLASHSALE_REDIS_URL": cluster.url,
            "FLASHSALE_REDIS_CLUSTER": "1",
            "FLASHSALE_REDIS_TIMEOUT_MS": str(int(deadline_s * 1000)),
        }
    )
    client = await open_redis(settings)
    assert isinstance(client, RedisCluster)
    # after a failed wait the consumer polls (every stream: the frozen one times out again)
    config = dataclasses.replace(ASLEEP, idle_sleep_s=0.05)
    persister = Persister(client, pg_pool, namespace=engine.namespace, config=config)
    try:
        async with _running(persister) as task:
            await asyncio.sleep(2 * deadline_s)  # waits of 0.75 s, each ended by its BLOCK
            order = await _buy(engine, sales[0], "idle")
            assert await persisted(pg_pool, order.order_id, 10.0)
            assert _persist_warnings(caplog) == []
            frozen.pause()
            paused_at = time.time()
            try:
                # a read sent to it now (first: no failover can have moved its slots yet)
                node = client.get_node(host="127.0.0.1", port=frozen.port)
                assert node is not None
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError):
                    await client.execute_command(
                        *("XREADGROUP", "GROUP", PERSIST_GROUP, "probe", "COUNT", 1),
                        *("STREAMS", frozen_key, ">"),
                        target_nodes=node,
                    )
                assert time.monotonic() - started < deadline_s + 0.7
                # the read waiting on it when it froze (or that began just after)
                failed = await _warned_of(caplog, frozen_key, timeout_s=3.0)
                assert "TimeoutError" in failed.getMessage()
                assert failed.created - paused_at < deadline_s + 0.7, failed.getMessage()
                for n, sale_id in enumerate(s for s in sales if s != frozen_sale):
                    order = await _buy(engine, sale_id, f"thawed-{n}")
                    assert await persisted(pg_pool, order.order_id, 10.0), sale_id
                await asyncio.to_thread(cluster.wait_failover, frozen)
            finally:
                frozen.resume()
            # until it has heard it was demoted, the thawed node still takes writes as a
            # master, which its resync then drops (split brain, asynchronous replication):
            # buy once it follows the promoted replica
            await asyncio.to_thread(frozen.wait_in_sync, 30.0)
            order = await _buy(engine, frozen_sale, "after-the-freeze")
            assert await engine.get_order(order.order_id) is not None
            assert await persisted(pg_pool, order.order_id, 30.0), "the frozen sale stopped"
            assert not task.done()
    finally:
        await client.aclose()


async def test_a_master_killed_while_the_write_behind_waits_does_not_stop_it(
    cluster: EmbeddedRedisCluster, engine: Engine, pg_pool: asyncpg.Pool
) -> None:
    sales = await _sale_on_each_master(engine, cluster)
    # a blocking read far longer than the test: only a failed read ends its window early;
    # polls after a failure every 20 ms (the default) until the cluster has healed
    config = PersistConfig(idle_block_s=20.0, discover_every_s=60.0, trim_every_s=60.0)
    persister = Persister(engine.redis, pg_pool, namespace=engine.namespace, config=config)
    victim_sale = _off_the_seed(engine, cluster, sales)
    victim = cluster.primary_of(engine.keys(victim_sale).events)
    async with _running(persister) as task:
        before = await _buy(engine, victim_sale, "before")
        assert await persisted(pg_pool, before.order_id, 10.0)
        victim.kill()
        await asyncio.to_thread(cluster.wait_failover, victim)
        for n, sale_id in enumerate([victim_sale, *(s for s in sales if s != victim_sale)]):
            order = await _buy(engine, sale_id, f"after-{n}")
            assert await persisted(pg_pool, order.order_id, 30.0), (
                f"the order of {sale_id}, made after the failover, was not written"
            )
        assert not task.done(), task.exception() if task.done() else None
