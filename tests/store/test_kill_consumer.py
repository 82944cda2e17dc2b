"""kill -9 of write-behind consumers, again and again, during a 50,000-order sale.

Two consumer processes share the sale's group; a killer SIGKILLs one of them at
a random moment at least ten times while purchases, payments and cancellations
flow, and starts a fresh one each time. Once drained, every order Redis
acknowledged is in PostgreSQL exactly once with its latest state (0 lost, 0
duplicated), per the audit and per what the buyers were told.

The same run with the deliberately broken consumer that acknowledges before
COMMIT must lose orders: that keeps this test sharp enough to catch it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order
from flashsale.errors import FlashsaleError
from flashsale.store.audit import AuditReport, audit_sale
from flashsale.store.lag import stream_lag

from .store_helpers import make_sale

HARNESS = Path(__file__).with_name("consumer_proc.py")
ORDERS = 50_000


@dataclass
class KillRun:
    kills: int = 0
    kills_in_sale: int = 0  # while purchases or payments were still flowing
    targeted: int = 0  # kills that found the victim inside a transaction
    acknowledged: dict[str, Order] = field(default_factory=dict)  # order_id -> last state told
    report: AuditReport | None = None
    missing_in_pg: int = 0
    seconds: float = 0.0


def _spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HARNESS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_kill_sale(
    engine: Engine,
    redis_url: str,
    database_url: str,
    namespace: str,
    pool: asyncpg.Pool,
    *,
    ack_before_commit: bool,
    orders: int = ORDERS,
    min_kills: int = 10,
) -> KillRun:
    rng = random.Random()
    sale_id = f"kill-{namespace}"
    await make_sale(engine, sale_id, size=orders)
    env = {
        **os.environ,
        "FS_REDIS_URL": redis_url,
        "FS_DATABASE_URL": database_url,
        "FS_NAMESPACE": namespace,
        "FS_ACK_BEFORE_COMMIT": "1" if ack_before_commit else "0",
        "FLASHSALE_PERSIST_BATCH_SIZE": "500",
        "FLASHSALE_PERSIST_MIN_IDLE_MS": "1000",
        "FLASHSALE_PERSIST_RECLAIM_EVERY_S": "0.3",
        "FLASHSALE_PERSIST_DISCOVER_EVERY_S": "0.2",
    }
    run = KillRun()
    procs = [_spawn(env), _spawn(env)]
    selling = True
    started = time.monotonic()

    async def buyer() -> None:
        nonlocal selling
        users = [f"u{i}" for i in range(orders)]
        extra = 0
        for start in range(0, orders, 1000):
            chunk_started = time.monotonic()
            results = await asyncio.gather(
                *(engine.purchase(sale_id, u) for u in users[start : start + 1000]),
                return_exceptions=True,
            )
            bought = [r.order for r in results if not isinstance(r, BaseException)]
            for order in bought:
                run.acknowledged[order.order_id] = order
            # some are paid, a few cancelled (their serials are sold again below)
            for order in bought[:40]:
                paid = await engine.confirm_payment(order.order_id, f"p-{order.order_id}")
                run.acknowledged[order.order_id] = paid
            for order in bought[40:60]:
                run.acknowledged[order.order_id] = await engine.cancel(order.order_id)
            for _ in range(20):
                extra += 1
                try:
                    order = (await engine.purchase(sale_id, f"x{extra}")).order
                    run.acknowledged[order.order_id] = order
                except FlashsaleError:
                    pass
            # paced a little: the sale lasts long enough for the kills to land during it,
            # yet outruns the consumers, so most kills find a batch in hand
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - chunk_started)))
        # the sale goes on (payments of pending orders) until ten kills landed during it
        pending = [o for o in run.acknowledged.values() if o.status == "pending_payment"]
        while run.kills_in_sale < min_kills and pending:
            for order in pending[:200]:
                run.acknowledged[order.order_id] = await engine.confirm_payment(
                    order.order_id, f"p-{order.order_id}"
                )
            del pending[:200]
            await asyncio.sleep(0.05)
        selling = False

    async def in_transaction() -> int | None:
        """Index of a consumer holding an open transaction right now, if one does soon."""
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            names = await pool.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE xact_start IS NOT NULL"
                " AND application_name LIKE 'fs-consumer-%'"
            )
            pids = {int(r["application_name"].rpartition("-")[2]) for r in names}
            for i, proc in enumerate(procs):
                if proc.pid in pids:
                    return i
        return None

    async def killer() -> None:
        while selling or run.kills < min_kills:
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            # a third of the kills anywhere, the others while a batch's transaction is
            # open (the moment an acknowledgement before COMMIT would lose the batch)
            victim = await in_transaction() if run.kills % 3 else None
            run.targeted += victim is not None
            if victim is None:
                victim = rng.randrange(len(procs))
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            run.kills += 1
            run.kills_in_sale += int(selling)
            procs[victim] = _spawn(env)

    try:
        await asyncio.gather(buyer(), killer())
        deadline = time.monotonic() + 90
        while (await stream_lag(engine.redis, namespace, sale_id)).entries:
            assert time.monotonic() < deadline, "consumers did not drain"
            await asyncio.sleep(0.2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    run.seconds = time.monotonic() - started
    run.report = await audit_sale(engine.redis, pool, namespace, sale_id)
    rows = await pool.fetch(
        "SELECT order_id, status, version FROM orders WHERE sale_id = $1", sale_id
    )
    stored = {r["order_id"]: (r["status"], r["version"]) for r in rows}
    run.missing_in_pg = sum(
        1
        for order_id, order in run.acknowledged.items()
        if stored.get(order_id) != (order.status, order.version)
    )
    return run


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_kill_9_consumers_ten_times_loses_nothing(
    engine: Engine,
    redis_url: str,
    migrated_database_url: str,
    namespace: str,
    pg_pool: asyncpg.Pool,
) -> None:
    run = await run_kill_sale(
        engine, redis_url, migrated_database_url, namespace, pg_pool, ack_before_commit=False
    )
    report = run.report
    assert report is not None
    print(
        f"\nkill -9 x{run.kills} ({run.kills_in_sale} during the sale, "
        f"{run.targeted} mid-transaction): "
        f"{len(run.acknowledged)} orders, {run.seconds:.1f}s, "
        f"persisted {report.persisted}, lag {report.lag}"
    )
    assert run.kills_in_sale >= 10
    assert len(run.acknowledged) >= ORDERS
    assert report.stream.dead_letters == 0
    assert report.ok, report.violations
    assert run.missing_in_pg == 0  # 0 lost, every state the buyer was told
    assert report.persisted == report.checked_orders == len(run.acknowledged)  # 0 duplicated
    assert report.lag == 0 and report.drained


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_ack_before_commit_is_caught(
    engine: Engine,
    redis_url: str,
    migrated_database_url: str,
    namespace: str,
    pg_pool: asyncpg.Pool,
) -> None:
    run = await run_kill_sale(
        engine,
        redis_url,
        migrated_database_url,
        namespace,
        pg_pool,
        ack_before_commit=True,
        orders=20_000,
    )
    report = run.report
    assert report is not None
    print(
        f"\nbroken variant, kill -9 x{run.kills} ({run.targeted} mid-transaction): "
        f"lost {run.missing_in_pg} of "
        f"{len(run.acknowledged)}; audit: persisted {report.persisted}, lag {report.lag}, "
        f"{[(v.code, v.count) for v in report.violations]}"
    )
    # the same checks as above must fail: the test is sharp enough to catch the bug
    assert run.missing_in_pg > 0
    assert not report.ok
    assert "not_persisted" in {v.code for v in report.violations}
