"""Fault tests against real processes: poison events, PostgreSQL stopped, Redis kill -9.

Each ends with the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.exceptions import RedisError

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order
from flashsale.errors import FlashsaleError
from flashsale.store import migrate
from flashsale.store.audit import audit_sale
from flashsale.store.lag import stream_lag
from flashsale.store.persist import PersistConfig, Persister

from .servers import PrivatePostgres, PrivateRedis
from .store_helpers import make_sale

FAST = PersistConfig(
    batch_size=200,
    min_idle_ms=200,
    reclaim_every_s=0.1,
    max_deliveries=3,
    discover_every_s=0.1,
    backoff_max_s=0.5,
)


@contextlib.asynccontextmanager
async def consuming(persister: Persister) -> AsyncIterator[Persister]:
    stop = asyncio.Event()
    task = asyncio.create_task(persister.run(stop))
    try:
        yield persister
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def wait_drained(engine: Engine, namespace: str, sale_id: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while (await stream_lag(engine.redis, namespace, sale_id)).entries:
        assert time.monotonic() < deadline, "write-behind did not drain"
        await asyncio.sleep(0.05)


async def buy_range(engine: Engine, sale_id: str, users: range, prefix: str = "u") -> list[Order]:
    results = await asyncio.gather(
        *(engine.purchase(sale_id, f"{prefix}{i}") for i in users), return_exceptions=True
    )
    return [r.order for r in results if not isinstance(r, BaseException)]


async def test_poison_event_is_dead_lettered_and_the_rest_flows(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"poison-{namespace}"
    await make_sale(engine, sale_id, size=1000)
    keys = engine.keys(sale_id)
    async with consuming(Persister(engine.redis, pg_pool, namespace=namespace, config=FAST)):
        first = await buy_range(engine, sale_id, range(300))
        poison = await engine.redis.xadd(
            keys.events, {"type": "purchased", "at_ms": "x", "order_id": "nonsense"}
        )
        unknown = await engine.redis.xadd(keys.events, {"type": "teleported", "at_ms": "1"})
        # a packed order event whose record does not decode (not msgpack at all)
        garbled = await engine.redis.xadd(keys.events, {"paid": b"\xc1\xff not msgpack"})
        second = await buy_range(engine, sale_id, range(300, 600))
        await wait_drained(engine, namespace, sale_id, limit_s=30)
    assert len(first) + len(second) == 600
    dead = await engine.redis.xrange(keys.persist_dead)
    by_id = {f[b"stream_id"].decode(): f for _, f in dead}
    assert set(by_id) == {poison.decode(), unknown.decode(), garbled.decode()}
    assert b"malformed event" in by_id[poison.decode()][b"reason"]
    assert b"does not decode" in by_id[garbled.decode()][b"reason"]
    assert json.loads(by_id[garbled.decode()][b"payload"])["paid"]["hex"].startswith("c1ff")
    assert b"unknown event type" in by_id[unknown.decode()][b"reason"]
    assert int(by_id[poison.decode()][b"deliveries"]) > FAST.max_deliveries
    assert json.loads(by_id[poison.decode()][b"payload"])["order_id"] == "nonsense"
    rows = await pg_pool.fetch("SELECT reason FROM dead_letters WHERE sale_id = $1", sale_id)
    assert len(rows) == 3
    report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    assert report.ok, report.violations
    assert report.persisted == 600 and report.stream.dead_letters == 3


async def test_events_postgresql_refuses_hold_back_nothing_else_of_their_sale(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    """A sale named with a NUL and a buyer id with one: PostgreSQL refuses both rows. Each
    event alone goes to the dead letters; every other order of the sale is persisted."""
    sale_id = f"nul-{namespace}"
    await make_sale(engine, sale_id, size=100, name="bad\x00name")
    good = await buy_range(engine, sale_id, range(50))
    bad = (await engine.purchase(sale_id, "u\x00x")).order
    later = await buy_range(engine, sale_id, range(50, 80))
    keys = engine.keys(sale_id)
    async with consuming(Persister(engine.redis, pg_pool, namespace=namespace, config=FAST)):
        await wait_drained(engine, namespace, sale_id, limit_s=30)
    persisted = {
        r["order_id"]
        for r in await pg_pool.fetch("SELECT order_id FROM orders WHERE sale_id = $1", sale_id)
    }
    assert persisted == {o.order_id for o in good + later}
    name = await pg_pool.fetchval("SELECT name FROM sales WHERE sale_id = $1", sale_id)
    assert name == "bad\ufffdname"  # the sale's row, its text repaired
    dead = await engine.redis.xrange(keys.persist_dead)
    payloads = [json.loads(fields[b"payload"]) for _, fields in dead]
    assert len(dead) == 2
    assert {p.get("type") for p in payloads} == {"sale_created", "purchased"}
    assert any(p.get("order_id") == bad.order_id for p in payloads)
    assert all(b"Error" in fields[b"reason"] for _, fields in dead)
    rows = await pg_pool.fetch("SELECT reason FROM dead_letters WHERE sale_id = $1", sale_id)
    assert len(rows) == 2  # PostgreSQL's copy of the dead letters, their text repaired


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_postgres_stopped_mid_sale_then_started(engine: Engine, namespace: str) -> None:
    pg = PrivatePostgres()
    try:
        pg.start()
        await migrate.upgrade(pg.url)
        pool = await asyncpg.create_pool(pg.url, min_size=1, max_size=3)
        assert pool is not None
        sale_id = f"pgdown-{namespace}"
        await make_sale(engine, sale_id, size=20_000)
        persister = Persister(engine.redis, pool, namespace=namespace, config=FAST)
        bought: list[Order] = []
        async with consuming(persister):
            for start in range(0, 3000, 500):
                bought += await buy_range(engine, sale_id, range(start, start + 500))
                await asyncio.sleep(0.05)
            pg.stop()
            down_at = time.monotonic()
            # purchases keep working while PostgreSQL is down
            while time.monotonic() - down_at < 4:
                start = len(bought)
                bought += await buy_range(engine, sale_id, range(start, start + 500))
                await asyncio.sleep(0.1)
            assert (await stream_lag(engine.redis, namespace, sale_id)).entries > 0
            pg.start()
            for _ in range(4):
                start = len(bought)
                bought += await buy_range(engine, sale_id, range(start, start + 500))
            await wait_drained(engine, namespace, sale_id)
        assert persister.stats.pg_retries > 0
        report = await audit_sale(engine.redis, pool, namespace, sale_id)
        assert report.ok, report.violations
        assert report.persisted == len(bought) and report.lag == 0
        await pool.close()
    finally:
        pg.cleanup()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_aof_redis_kill_9_mid_sale_keeps_every_acknowledged_purchase(
    pg_pool: asyncpg.Pool, namespace: str
) -> None:
    server = PrivateRedis(appendonly=True, appendfsync="always")
    server.start()
    engine = Engine.from_url(server.url, namespace=namespace, max_connections=16)
    try:
        sale_id = f"aofkill-{namespace}"
        await make_sale(engine, sale_id, size=50_000)
        told: dict[str, Order] = {}
        failed = 0

        async def buyer(offset: int) -> None:
            nonlocal failed
            for i in range(offset, 12_000, 32):
                try:
                    order = (await engine.purchase(sale_id, f"u{i}")).order
                    told[order.order_id] = order
                except (FlashsaleError, RedisError):  # Redis down, or still loading its AOF
                    failed += 1
                    await asyncio.sleep(0.01)

        persister = Persister(engine.redis, pg_pool, namespace=namespace, config=FAST)
        async with consuming(persister):
            buyers = [asyncio.create_task(buyer(k)) for k in range(32)]
            while len(told) < 3000:  # noqa: ASYNC110 (polling the buyers' progress)
                await asyncio.sleep(0.01)
            server.kill()  # mid-sale, purchases in flight
            await asyncio.sleep(0.5)
            server.start()
            await asyncio.gather(*buyers)
            await wait_drained(engine, namespace, sale_id)
        assert failed > 0, "the kill did not land during the sale"
        for order_id, order in told.items():
            again = await engine.get_order(order_id)
            assert again is not None and again.serial == order.serial
        report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
        assert report.ok, report.violations
        stored = {
            r["order_id"]
            for r in await pg_pool.fetch("SELECT order_id FROM orders WHERE sale_id = $1", sale_id)
        }
        assert set(told) <= stored
        assert report.persisted == report.checked_orders
    finally:
        await engine.aclose()
        server.cleanup()


async def test_a_stuck_connection_is_dropped_and_the_batch_written_on_another(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg's InternalClientError ("cannot switch to state 15; another operation is in
    progress"), once seen on a pooled connection after PostgreSQL restarted, stopped the
    write-behind. Now the connection is terminated and the batch retried on a new one."""
    from flashsale.store import persist

    sale_id = f"stuck-{namespace}"
    await make_sale(engine, sale_id, size=100)
    bought = await buy_range(engine, sale_id, range(30))
    real_apply = persist.apply_events
    stuck: list[int] = []  # the stuck connection's server pid

    async def first_stuck(conn: asyncpg.Connection, events: list[persist.Event]) -> None:
        if not stuck:
            stuck.append(conn.get_server_pid())
            raise asyncpg.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            )
        await real_apply(conn, events)

    monkeypatch.setattr(persist, "apply_events", first_stuck)
    persister = Persister(engine.redis, pg_pool, namespace=namespace, config=FAST)
    async with consuming(persister):
        await wait_drained(engine, namespace, sale_id, limit_s=30)
    assert persister.stats.pg_retries >= 1
    [pid] = stuck
    deadline = time.monotonic() + 10  # the server ends the backend once the client closed
    query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
    while await pg_pool.fetchval(query, pid):
        assert time.monotonic() < deadline, "the stuck connection was given back to the pool"
        await asyncio.sleep(0.05)
    persisted = await pg_pool.fetchval("SELECT count(*) FROM orders WHERE sale_id = $1", sale_id)
    assert persisted == len(bought)
