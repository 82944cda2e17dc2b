"""The audit sees every invariant broken on purpose, and passes a clean sale."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.store.audit import audit_sale
from flashsale.store.audit.checks import check_postgres_matches_counters
from flashsale.store.audit.snapshot import read_snapshot
from flashsale.store.persist import Persister

from .store_helpers import buy_many, make_sale


async def _sale(engine: Engine, pg_pool: asyncpg.Pool, namespace: str, name: str) -> str:
    sale_id = f"{name}-{namespace}"
    await make_sale(engine, sale_id, size=200)
    orders = await buy_many(engine, sale_id, [f"u{i}" for i in range(150)])
    for order in orders[:20]:
        await engine.confirm_payment(order.order_id, f"p-{order.order_id}")
    for order in orders[20:30]:
        await engine.cancel(order.order_id)
    await Persister(engine.redis, pg_pool, namespace=namespace).drain(timeout_s=30)
    return sale_id


async def test_clean_sale_passes(engine: Engine, pg_pool: asyncpg.Pool, namespace: str) -> None:
    sale_id = await _sale(engine, pg_pool, namespace, "clean")
    report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    assert report.ok, report.violations
    assert report.violations == []
    assert report.persisted == 150 and report.lag == 0 and report.drained
    assert report.redis.reserved == 120 and report.redis.sold == 20
    assert report.checked_orders == 150
    quick = await audit_sale(engine.redis, pg_pool, namespace, sale_id, deep=False)
    assert quick.ok and quick.persisted == 150 and quick.lag == 0


async def test_lag_before_the_write_behind_runs(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"lag-{namespace}"
    await make_sale(engine, sale_id, size=50)
    await buy_many(engine, sale_id, [f"u{i}" for i in range(30)])
    report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    assert report.ok, report.violations  # not drained yet: lag, not a violation
    assert report.lag == 30 and report.persisted == 0 and not report.drained


async def test_planted_inconsistencies_are_seen(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = await _sale(engine, pg_pool, namespace, "planted")
    keys = engine.keys(sale_id)
    # 1. a persisted order vanishes from PostgreSQL
    lost = await pg_pool.fetchval(
        "DELETE FROM orders WHERE order_id = (SELECT min(order_id) FROM orders WHERE sale_id = $1"
        " AND status = 'pending_payment') RETURNING order_id",
        sale_id,
    )
    report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    assert not report.ok
    codes = {v.code for v in report.violations}
    assert "not_persisted" in codes, report.violations
    assert any(lost in e for v in report.violations for e in v.examples)

    # 2. Redis half-replays a purchase: a serial drawn and a buyer counted, no order
    await engine.redis.hincrby(keys.meta, "drawn", 1)
    await engine.redis.hset(keys.buyers, "l:ghost", "0" * 20)  # listed live, no such order
    report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    codes = {v.code for v in report.violations}
    assert {"pool_mismatch", "counted_without_order", "buyer_count_mismatch"} <= codes, codes

    # 3. PostgreSQL ahead of Redis, and a serial held twice
    await pg_pool.execute(
        "UPDATE orders SET version = version + 5, status = 'expired' WHERE order_id = ("
        " SELECT max(order_id) FROM orders WHERE sale_id = $1 AND status = 'pending_payment')",
        sale_id,
    )
    report = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    assert "postgres_ahead" in {v.code for v in report.violations}


async def test_cli_audit_exits_non_zero_on_a_planted_inconsistency(
    engine: Engine,
    pg_pool: asyncpg.Pool,
    namespace: str,
    redis_url: str,
    migrated_database_url: str,
) -> None:
    sale_id = await _sale(engine, pg_pool, namespace, "cli")
    env = {
        **os.environ,
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": migrated_database_url,
        "FLASHSALE_NAMESPACE": namespace,
    }
    argv = [sys.executable, "-m", "flashsale.store.cli", "audit", sale_id]

    async def audit(*extra: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv, *extra, env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    code, out = await audit("--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["ok"] is True and body["violations"] == [] and body["persisted"] == 150
    assert body["lag"] == 0
    # plant: a serial drawn with no order behind it (what a half-replayed script leaves)
    await engine.redis.hincrby(engine.keys(sale_id).meta, "drawn", 1)
    code, out = await audit()
    assert code == 1
    assert "VIOLATION pool_mismatch" in out


async def test_postgres_read_after_a_later_purchase_is_not_compared_with_older_counters(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    """The race the live-sale audit once hit: PostgreSQL is read again after the snapshot
    (it may have caught up); an order bought and persisted meanwhile is in it but not in
    the snapshot's counters, and that is no violation."""
    sale_id = await _sale(engine, pg_pool, namespace, "later")
    snapshot = await read_snapshot(engine.redis, pg_pool, namespace, sale_id, deep=True, chunk=50)
    assert snapshot.settled and snapshot.drained
    assert await check_postgres_matches_counters(snapshot) == []
    await buy_many(engine, sale_id, ["late-buyer"])
    await Persister(engine.redis, pg_pool, namespace=namespace).drain(timeout_s=30)
    assert not await snapshot.still_settled()
    assert await check_postgres_matches_counters(snapshot) == []
    # the same difference read at one moment is a violation
    await engine.redis.hincrby(engine.keys(sale_id).meta, "reserved", -1)
    again = await read_snapshot(engine.redis, pg_pool, namespace, sale_id, deep=True, chunk=50)
    assert [v.code for v in await check_postgres_matches_counters(again)] == ["counter_mismatch"]


async def test_audit_during_a_live_sale_reports_no_false_violation(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"live-{namespace}"
    await make_sale(engine, sale_id, size=3000, per_user_limit=2)
    persister = Persister(engine.redis, pg_pool, namespace=namespace)
    stop = asyncio.Event()
    consumer = asyncio.create_task(persister.run(stop))
    selling = True

    async def traffic() -> None:
        for round_ in range(12):
            orders = await buy_many(
                engine, sale_id, [f"u{round_}-{i % 150}" for i in range(300)], concurrency=32
            )
            for order in orders[:30]:
                await engine.confirm_payment(order.order_id, f"p-{order.order_id}")
            for order in orders[30:60]:
                await engine.cancel(order.order_id)
            await asyncio.sleep(0.05)

    async def auditor() -> list[Any]:
        reports = []
        while selling:
            reports.append(await audit_sale(engine.redis, pg_pool, namespace, sale_id))
        return reports

    audits = asyncio.create_task(auditor())
    try:
        await traffic()
    finally:
        selling = False
        reports = await audits
        await persister.drain(timeout_s=30)
        stop.set()
        await consumer
    assert len(reports) >= 2
    for report in reports:
        assert report.ok, report.violations
    final = await audit_sale(engine.redis, pg_pool, namespace, sale_id)
    assert final.ok and final.settled and final.drained and final.lag == 0, final
