"""The timers on a bucketed drop: they expire the orders of every bucket, and they end the
claims a purchase left when it stopped between taking a serial and placing its order."""

from __future__ import annotations

import pytest

from flashsale.engine.active import retire
from flashsale.engine.clock import now_ms
from flashsale.engine.keys import bucket_slot, creations, home_bucket
from flashsale.engine.models import SaleUpdate
from flashsale.payments.timers import Timers
from tests.engine.tune_child import tune_in_a_child

from .conftest import Flow
from .helpers import eventually


async def test_timers_expire_every_bucket_and_sweep_stale_claims(flow: Flow) -> None:
    engine = flow.engine
    sale = await flow.sale(size=4, buckets=2, payment_timeout_s=1)
    homed = [u for u in (f"{flow.prefix}-{i}" for i in range(100)) if home_bucket(u, 2) == 1]
    orders = [await flow.buy(sale.sale_id, user) for user in homed[:3]]  # the 3rd borrowed
    # a purchase that took the last serial of bucket 0 and died before placing it
    lender, home = engine.keys(sale.sale_id), engine.keys(f"{sale.sale_id}.1")
    order_id = f"{home.sale_id}.{'cd' * 10}"
    long_ago = now_ms() - 10 * 60 * 1000
    took = await engine._call(
        "take",
        [lender.meta, lender.segments, lender.items, lender.returned, lender.claims],
        [order_id, home.sale_id, long_ago, ""],
    )
    assert int(took[0]) == 1
    assert (await engine.get_sale(sale.sale_id)).available == 0
    timers = Timers(flow.service, interval_s=0.05)
    swept = 0

    async def settled() -> bool:
        nonlocal swept
        swept += (await timers.tick()).claims_swept
        got = [await engine.get_order(o.order_id) for o in orders]
        return swept == 1 and all(o is not None and o.status == "expired" for o in got)

    await eventually(settled, 15)
    sale_now = await engine.get_sale(sale.sale_id)
    assert (sale_now.available, sale_now.reserved) == (4, 0)
    assert await engine.redis.hget(home.fences, order_id) is not None


async def test_a_tick_reads_the_active_sales_once(flow: Flow) -> None:
    """Expiry, completion and the claim sweep share one read of the active set per tick
    (its cost does not grow with the steps that walk the active sales)."""
    await flow.sale(size=2, buckets=2)
    timers = Timers(flow.service)
    engine = flow.engine
    reads = 0
    read_active = engine.active_sale_ids

    async def counted() -> list[str]:
        nonlocal reads
        reads += 1
        return await read_active()

    engine.active_sale_ids = counted  # type: ignore[method-assign]
    try:
        stats = await timers.tick()
    finally:
        del engine.active_sale_ids
    assert (reads, stats.errors) == (1, 0)


async def test_a_tune_stopped_after_bucket_0_is_levelled_by_one_tick(
    flow: Flow, redis_url: str
) -> None:
    """The tuning process killed once bucket 0 had the tune: the other buckets still sell
    under the old settings and the sale reads tune_pending; the next tick of the timers
    brings them level, with no tune from an operator."""
    engine = flow.engine
    sale = await flow.sale(size=9, buckets=3)
    update = {"status": "paused", "per_user_limit": 2}
    code, output = await tune_in_a_child(
        redis_url, engine.namespace, sale.sale_id, update, "tune.after_bucket_0"
    )
    assert code == -9, (code, output)
    metas = [engine.keys(bucket_slot(sale.sale_id, b)).meta for b in range(3)]

    async def settings() -> list[list[bytes | None]]:
        return [await engine.redis.hmget(m, ["status", "per_user_limit"]) for m in metas]

    assert await settings() == [[b"paused", b"2"], [b"open", b"1"], [b"open", b"1"]]
    assert (await engine.get_sale(sale.sale_id)).tune_pending
    timers = Timers(flow.service)
    stats = await timers.tick()
    assert (stats.leveled, stats.errors) == (2, 0)
    assert await settings() == [[b"paused", b"2"]] * 3
    after = await engine.get_sale(sale.sale_id)
    assert after.status == "paused" and after.per_user_limit == 2 and not after.tune_pending
    events = await engine.redis.xrange(engine.keys(sale.sale_id).events)
    assert sum(f[b"type"] == b"sale_tuned" for _, f in events) == 1, "levelling wrote a tune"
    assert (await timers.tick()).leveled == 0  # level: read, nothing written


async def test_a_tick_deletes_the_ip_holds_of_a_retired_sale(flow: Flow) -> None:
    engine = flow.engine
    sale = await flow.sale(size=4, buckets=2, per_ip_limit=2)
    ip = "192.0.2.9"
    buyer = next(
        u
        for u in (f"{flow.prefix}-{i}" for i in range(100))
        if home_bucket(u, 2) != home_bucket(ip, 2)
    )
    order = (await engine.purchase(sale.sale_id, buyer, ip=ip)).order
    await engine.confirm_payment(order.order_id, "paid")  # a live order: its hold never ends
    holds = engine.keys(bucket_slot(sale.sale_id, home_bucket(ip, 2))).ipholds
    assert await engine.redis.hlen(holds) == 2
    timers = Timers(flow.service)
    assert (await timers.tick()).holds_dropped == 0, "an open sale's holds stay"
    await engine.tune(sale.sale_id, SaleUpdate(status="closed"))

    async def drained() -> bool:
        return False

    for slot in await engine.slots(sale.sale_id):  # the write-behind's retirement
        assert await retire(engine.redis, engine.namespace, slot, now_ms(), drained)
    assert (await timers.tick()).holds_dropped == 2
    assert not await engine.redis.exists(holds)


class Stopped(Exception):
    """The creating process stops here (in-process: the test runs on a cluster too)."""


async def test_a_tick_deletes_the_orphans_of_a_creation_stopped_long_ago(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = flow.engine
    sale_id = f"{flow.prefix}-orphan"

    def stop_after_bucket_1(name: str) -> None:
        if name == "create.after_bucket_1":
            raise Stopped(name)

    monkeypatch.setattr("flashsale.engine.engine.crash_point", stop_after_bucket_1)
    with pytest.raises(Stopped):
        await flow.sale(size=6, buckets=3, sale_id=sale_id)
    monkeypatch.undo()
    orphan = engine.keys(bucket_slot(sale_id, 1))
    assert await engine.redis.exists(orphan.meta)
    timers = Timers(flow.service)
    assert (await timers.tick()).orphans_dropped == 0, "a creation just begun may be running"
    index = creations(engine.namespace)
    [attempt] = await engine.redis.zrange(index, 0, -1)
    await engine.redis.zadd(index, {attempt: now_ms() - 11 * 60 * 1000})  # began long ago
    assert (await timers.tick()).orphans_dropped == 1
    assert not await engine.redis.exists(orphan.meta, orphan.segments)
    sale = await flow.sale(size=6, buckets=3, sale_id=sale_id)  # the id is free again
    assert (sale.total, sale.available, sale.buckets) == (6, 6, 3)
