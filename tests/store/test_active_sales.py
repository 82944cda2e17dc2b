"""The active sales: persist and timers work on them only; a closed, drained sale leaves,
and any later transition of its orders brings it back (engine/active.py)."""

from __future__ import annotations

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.engine.keys import active_sales, active_sales_seeded
from flashsale.engine.models import SaleUpdate
from flashsale.store.persist import PersistConfig, Persister

from .store_helpers import make_sale

FAST = PersistConfig(discover_every_s=0.0, min_idle_ms=200, reclaim_every_s=0.1)


async def _active(engine: Engine) -> set[str]:
    return set(await engine.active_sale_ids())


async def _rounds(persister: Persister, n: int = 4) -> None:
    for _ in range(n):
        await persister.step()


async def test_a_closed_drained_sale_leaves_and_a_late_transition_brings_it_back(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    open_id, closing_id = f"open-{namespace}", f"closing-{namespace}"
    await make_sale(engine, open_id)
    await make_sale(engine, closing_id)
    assert {open_id, closing_id} <= await _active(engine)
    order = (await engine.purchase(closing_id, "u1")).order
    await engine.tune(closing_id, SaleUpdate(status="closed"))
    persister = Persister(engine.redis, pg_pool, namespace=namespace, config=FAST)
    await _rounds(persister)
    # closed, but a pending order may still expire: it stays
    assert closing_id in await _active(engine)
    await engine.confirm_payment(order.order_id, "pay-1")  # no pending order left
    await _rounds(persister)
    active = await _active(engine)
    assert closing_id not in active and open_id in active  # an open sale never leaves
    assert closing_id not in persister._sales
    # a late transition (a refund requested after the close) writes an event: back it comes
    await engine.request_refund(order.order_id, user_id="u1", reason="changed my mind")
    assert closing_id in await _active(engine)
    await _rounds(persister)
    status = await pg_pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order.order_id)
    assert status == "refund_pending"  # the write-behind saw the late event


async def test_the_set_is_seeded_once_from_the_registry(engine: Engine, namespace: str) -> None:
    await make_sale(engine, f"old-{namespace}")
    await engine.redis.delete(active_sales(namespace), active_sales_seeded(namespace))
    assert f"old-{namespace}" in await _active(engine)  # a store from before the set
    assert await engine.redis.exists(active_sales_seeded(namespace))


async def test_the_idle_bench_runs_bounded_and_reports_flat_calls(
    redis_url: str, migrated_database_url: str
) -> None:
    from flashsale.bench.active import measure, report

    figures = {n: await measure(redis_url, migrated_database_url, n) for n in (2, 20)}
    assert all(f["active"] == 0 for f in figures.values())  # every closed sale retired
    # no figure asserted: the Redis call counts are server-wide (the bench's own Redis is
    # private; the suite's is shared), and speed is the bench's business
    assert all(f["persist_us"] > 0 and f["timers_us"] > 0 for f in figures.values())
    assert "| 20 |" in report(figures)
