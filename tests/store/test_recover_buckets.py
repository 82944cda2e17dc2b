"""``flashsale recover`` on a bucketed drop: Redis killed mid-sale (orders in every bucket,
some borrowed, one purchase stopped between take and place) and restarted from its AOF;
and a drop one of whose buckets lost its keys (a shard restarted empty).

``recover`` rebuilds nothing from PostgreSQL: it rewrites a truncated AOF, pauses every
open sale, audits it and reopens it only when clean (store/recover.py).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine, new_order_id
from flashsale.engine.keys import bucket_slot, home_bucket, slot_of_order
from flashsale.store.audit import audit_sale
from flashsale.store.persist import PersistConfig, Persister
from flashsale.store.recover import recover

from .servers import PrivateRedis
from .store_helpers import buy_many, make_sale
from .test_power_loss import _reconnect

B = 3


def _homed(bucket: int, n: int, prefix: str) -> list[str]:
    users = (f"{prefix}{i}" for i in range(100_000))
    return [u for u in users if home_bucket(u, B) == bucket][:n]


def _persister(engine: Engine, pg_pool: asyncpg.Pool, namespace: str) -> Persister:
    config = PersistConfig(min_idle_ms=100, reclaim_every_s=0.05)
    return Persister(engine.redis, pg_pool, namespace=namespace, config=config)


async def _crash_after_take(engine: Engine, sale_id: str, user: str, lender: int) -> None:
    """A purchase that took a serial from ``lender`` and stopped before placing it."""
    home = engine.keys(bucket_slot(sale_id, home_bucket(user, B)))
    order_id = new_order_id(home.sale_id)
    took = await engine._take(engine.keys(bucket_slot(sale_id, lender)), order_id, home.sale_id, "")
    assert int(took[0]) == 1, took


@pytest.mark.timeout(120)
async def test_a_bucketed_drop_survives_a_restart_and_recover(
    pg_pool: asyncpg.Pool, namespace: str
) -> None:
    server = PrivateRedis(appendonly=True, appendfsync="always")
    server.start()
    engine = Engine.from_url(server.url, namespace=namespace, max_connections=8)
    sale_id = f"rb-{namespace}"
    try:
        await make_sale(engine, sale_id, size=30, buckets=B)  # 10 serials a bucket
        # bucket 1's buyers take 13: 3 of them borrowed from the other buckets
        first = await buy_many(engine, sale_id, _homed(1, 13, "one-"), concurrency=4)
        first += await buy_many(engine, sale_id, _homed(2, 4, "two-"), concurrency=4)
        assert len(first) == 17
        # bucket 1 draws [0, 10) of the one draw sequence: a draw outside it was borrowed
        ones = [o for o in first if slot_of_order(o.order_id) == f"{sale_id}.1"]
        borrowed = [o for o in ones if o.draw is not None and not 0 <= o.draw < 10]
        assert len(ones) == 13 and len(borrowed) == 3, [o.draw for o in ones]
        await _crash_after_take(engine, sale_id, _homed(0, 1, "crash-")[0], lender=2)
        await _persister(engine, pg_pool, namespace).drain(timeout_s=30)
        # mid-sale: a burst in flight when Redis dies (kill -9), restarted from its AOF
        burst = [asyncio.ensure_future(engine.purchase(sale_id, u)) for u in _homed(0, 6, "b-")]
        await asyncio.sleep(0)
        server.kill()
        answered = [
            r.order
            for r in await asyncio.gather(*burst, return_exceptions=True)
            if not isinstance(r, BaseException)
        ]
        server.start()
        await _reconnect(engine, sale_id)
        await _persister(engine, pg_pool, namespace).drain(timeout_s=30)

        report = await recover(engine, pg_pool)
        [ours] = [r for r in report.sales if r.sale_id == sale_id]
        assert ours.was_open and ours.ok and ours.reopened, ours
        for slot in await engine.slots(sale_id):  # every bucket reopened, not bucket 0 alone
            assert await engine.redis.hget(engine.keys(slot).meta, "status") == b"open", slot
        # every order acknowledged before the kill is back in its own bucket
        for order in [*first, *answered]:
            stored = await engine.redis.hget(
                engine.keys(slot_of_order(order.order_id)).orders, order.order_id
            )
            assert stored is not None, order.order_id

        # purchases continue until the drop is sold out (the crashed claim swept first)
        for slot in await engine.slots(sale_id):
            await engine.sweep_claims(slot, older_than_ms=0)
        more = await buy_many(engine, sale_id, [f"after-{i}" for i in range(40)], concurrency=8)
        with pytest.raises(errors.SoldOut):
            await engine.purchase(sale_id, "after-last")
        live = await engine.orders_of_sale(sale_id)
        serials = [o.serial for o in live if o.status == "pending_payment"]
        assert len(serials) == len(set(serials)) == 30, "each serial sold once"
        assert len(more) == 30 - len(first) - len(answered)
        await _persister(engine, pg_pool, namespace).drain(timeout_s=30)
        audit = await audit_sale(engine.redis, pg_pool, namespace, sale_id, deep=True)
        assert audit.ok, audit.violations
    finally:
        await engine.aclose()
        server.cleanup()


@pytest.mark.timeout(120)
async def test_a_bucket_that_lost_its_keys_keeps_the_whole_drop_paused(
    pg_pool: asyncpg.Pool, namespace: str
) -> None:
    """A shard restarted empty took bucket 2 with it: recover must not reopen the drop
    (its other buckets would sell on, bucket 2's orders and stock unknown), and the audit
    names what is missing."""
    server = PrivateRedis(appendonly=True, appendfsync="always")
    server.start()
    engine = Engine.from_url(server.url, namespace=namespace, max_connections=8)
    sale_id = f"rl-{namespace}"
    try:
        await make_sale(engine, sale_id, size=30, buckets=B)
        bought = await buy_many(engine, sale_id, _homed(2, 12, "two-"), concurrency=4)
        bought += await buy_many(engine, sale_id, _homed(0, 3, "zero-"), concurrency=4)
        assert len(bought) == 15
        await _persister(engine, pg_pool, namespace).drain(timeout_s=30)
        lost = [k async for k in engine.redis.scan_iter(match=f"*{{sale:{sale_id}.2}}*")]
        assert lost
        await engine.redis.delete(*lost)

        report = await recover(engine, pg_pool)
        [ours] = [r for r in report.sales if r.sale_id == sale_id]
        assert ours.was_open and not ours.ok and not ours.reopened, ours
        assert ours.violations and not report.ok
        for slot in await engine.slots(sale_id):
            if slot != f"{sale_id}.2":
                status = await engine.redis.hget(engine.keys(slot).meta, "status")
                assert status == b"paused", slot
        for user in _homed(0, 1, "later-") + _homed(1, 1, "later-"):
            with pytest.raises(errors.SalePaused):
                await engine.purchase(sale_id, user)
    finally:
        await engine.aclose()
        server.cleanup()
