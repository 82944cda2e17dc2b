"""The write-behind against the shared Redis and PostgreSQL: orders arrive once, newest wins."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from flashsale.engine.engine import Engine
from flashsale.engine.keys import PERSIST_GROUP, SaleKeys
from flashsale.store.lag import stream_lag
from flashsale.store.persist import PersistConfig, Persister

from .store_helpers import buy_many, make_sale


async def test_orders_reach_postgres_with_their_latest_state(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"basic-{namespace}"
    await make_sale(engine, sale_id, size=500)
    orders = await buy_many(engine, sale_id, [f"u{i}" for i in range(600)])
    assert len(orders) == 500
    paid = orders[:50]
    for order in paid:
        await engine.confirm_payment(order.order_id, f"pay-{order.order_id}")
    for order in orders[50:80]:
        await engine.cancel(order.order_id)
    # the cancelled serials are sold again
    resold = await buy_many(engine, sale_id, [f"v{i}" for i in range(40)])
    assert len(resold) == 30

    persister = Persister(
        engine.redis, pg_pool, namespace=namespace, config=PersistConfig(batch_size=97)
    )
    await persister.drain(timeout_s=30)

    rows = await pg_pool.fetch(
        "SELECT status, count(*) AS n FROM orders WHERE sale_id = $1 GROUP BY status",
        sale_id,
    )
    by_status = {r["status"]: r["n"] for r in rows}
    assert by_status == {"paid": 50, "cancelled": 30, "pending_payment": 450}
    versions = await pg_pool.fetchval(
        "SELECT count(*) FROM order_events e JOIN orders o USING (order_id) WHERE o.sale_id = $1",
        sale_id,
    )
    assert versions == 530 + 80
    sale = await pg_pool.fetchrow("SELECT * FROM sales WHERE sale_id = $1", sale_id)
    assert sale["total"] == 500 and sale["per_user_limit"] == 1 and sale["max_per_user_limit"] == 1

    # replaying the whole history again changes nothing (idempotent by version)
    lag = await stream_lag(engine.redis, namespace, sale_id)
    assert lag.entries == 0
    before = await pg_pool.fetch(
        "SELECT order_id, status, version FROM orders WHERE sale_id = $1 ORDER BY 1", sale_id
    )
    await engine.redis.xgroup_destroy(SaleKeys(namespace, sale_id).events, PERSIST_GROUP)
    # the stream was trimmed as the group acknowledged it: what is left replays as a no-op
    again = Persister(engine.redis, pg_pool, namespace=namespace)
    await again.drain(timeout_s=30)
    after = await pg_pool.fetch(
        "SELECT order_id, status, version FROM orders WHERE sale_id = $1 ORDER BY 1", sale_id
    )
    assert before == after


@pytest.mark.parametrize("limit", [1])
async def test_postgres_refuses_two_live_orders_for_one_serial(
    pg_pool: asyncpg.Pool, limit: int
) -> None:
    await pg_pool.execute(
        "INSERT INTO sales (sale_id, name, status, start_at, per_user_limit, max_per_user_limit,"
        " payment_timeout_s, price_cents, currency, assignment, total, version, created_at,"
        " updated_at) VALUES ('uniq-x', 'x', 'open', now(), $1, $1, 60, 0, 'CNY', 'sequential',"
        " 10, 1, now(), now()) ON CONFLICT DO NOTHING",
        limit,
    )
    insert = (
        "INSERT INTO orders (order_id, sale_id, user_id, serial, serial_kind, status, version,"
        " created_at, expires_at, updated_at, price_cents, currency, one_per_buyer)"
        " VALUES ($1, 'uniq-x', $2, $3, 'r', 'pending_payment', 1, now(), now(), now(), 0,"
        " 'CNY', true)"
    )
    await pg_pool.execute(insert, "uniq-x.a", "alice", "7")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pg_pool.execute(insert, "uniq-x.b", "bob", "7")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pg_pool.execute(insert, "uniq-x.c", "alice", "8")


async def test_trim_keeps_memory_bounded_and_forgets_dead_consumers(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"trim-{namespace}"
    await make_sale(engine, sale_id, size=2000)
    key = SaleKeys(namespace, sale_id).events
    await engine.redis.xgroup_create(key, PERSIST_GROUP, id="0")
    # a consumer that joined and died holding nothing
    await engine.redis.xgroup_createconsumer(key, PERSIST_GROUP, "ghost")
    await buy_many(engine, sale_id, [f"u{i}" for i in range(1500)])
    persister = Persister(
        engine.redis,
        pg_pool,
        namespace=namespace,
        config=PersistConfig(batch_size=400, forget_consumer_after_ms=0),
    )
    await persister.drain(timeout_s=30)
    await persister.trim(sale_id)
    assert await engine.redis.xlen(key) == 0  # everything acknowledged is gone
    names = {c["name"] for c in await engine.redis.xinfo_consumers(key, PERSIST_GROUP)}
    assert b"ghost" not in names and "ghost" not in names
    # new entries after a trim are still consumed
    await buy_many(engine, sale_id, [f"v{i}" for i in range(100)])
    await persister.drain(timeout_s=30)
    count = await pg_pool.fetchval("SELECT count(*) FROM orders WHERE sale_id = $1", sale_id)
    assert count == 1600


async def test_a_lost_group_is_recreated_and_nothing_is_lost(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"nogroup-{namespace}"
    await make_sale(engine, sale_id, size=1000)
    persister = Persister(
        engine.redis, pg_pool, namespace=namespace, config=PersistConfig(trim_every_s=3600)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(persister.run(stop))
    try:
        await buy_many(engine, sale_id, [f"u{i}" for i in range(300)])
        while (await stream_lag(engine.redis, namespace, sale_id)).entries:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        # what a Redis restart without AOF does to the group (the stream survives here)
        await engine.redis.xgroup_destroy(SaleKeys(namespace, sale_id).events, PERSIST_GROUP)
        await buy_many(engine, sale_id, [f"v{i}" for i in range(300)])
        for _ in range(500):
            await asyncio.sleep(0.02)
            lag = await stream_lag(engine.redis, namespace, sale_id)
            if lag.consumers and not lag.entries:
                break
    finally:
        stop.set()
        await task
    count = await pg_pool.fetchval("SELECT count(*) FROM orders WHERE sale_id = $1", sale_id)
    assert count == 600


async def test_busy_sales_of_one_server_are_written_in_one_transaction_per_round(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sales = [f"together{i}-{namespace}" for i in range(5)]
    for sale_id in sales:
        await make_sale(engine, sale_id)
    persister = Persister(
        engine.redis, pg_pool, namespace=namespace, config=PersistConfig(discover_every_s=0.0)
    )
    await persister.step()  # the sales' creation events
    bought = [await buy_many(engine, sale_id, [f"u{i}" for i in range(20)]) for sale_id in sales]
    batches = persister.stats.batches
    assert await persister.step() == 5 * 20
    assert persister.stats.batches == batches + 1, "one commit for the five sales, not five"
    count = await pg_pool.fetchval(
        "SELECT count(*) FROM orders WHERE sale_id = ANY($1::text[])", sales
    )
    assert count == sum(len(orders) for orders in bought) == 100
    for sale_id in sales:
        assert (await stream_lag(engine.redis, namespace, sale_id)).entries == 0
