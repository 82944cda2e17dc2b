"""Housekeeping of finished bucketed drops (engine/housekeeping.py): the IP holds of paid
orders, never ended, are deleted once their slot is retired, a bounded amount per call,
and a live sale's holds are never touched."""

from __future__ import annotations

from flashsale.engine.active import retire
from flashsale.engine.engine import Engine
from flashsale.engine.keys import bucket_slot, home_bucket, housekeeping_queue
from flashsale.engine.models import SaleUpdate

from .helpers import make_sale

B = 2


def _away_from(ip: str, n: int) -> list[str]:
    """Buyers homed in another bucket than the address's IP home: their purchases hold."""
    users = (f"hk{i}" for i in range(10_000))
    return [u for u in users if home_bucket(u, B) != home_bucket(ip, B)][:n]


async def _held_sale(engine: Engine, sale_id: str, ips: list[str]) -> list[str]:
    """A bucketed drop with the per-IP limit on and one paid order per address whose
    buyer is homed away from the address's IP home: one hold each, never ended. Answers
    the slots holding them."""
    await make_sale(engine, sale_id, size=20, buckets=B, per_ip_limit=3)
    slots = set()
    for n, ip in enumerate(ips):
        user = _away_from(ip, len(ips))[n]
        order = (await engine.purchase(sale_id, user, ip=ip)).order
        await engine.confirm_payment(order.order_id, f"pay-{n}")
        slots.add(bucket_slot(sale_id, home_bucket(ip, B)))
    return sorted(slots)


async def _fields(engine: Engine, slots: list[str]) -> int:
    return sum([await engine.redis.hlen(engine.keys(s).ipholds) for s in slots])


async def _retire_all(engine: Engine, sale_id: str) -> None:
    """What the write-behind does once the sale is closed and drained."""

    async def drained() -> bool:
        return False

    now = engine.clock()
    for slot in await engine.slots(sale_id):
        assert await retire(engine.redis, engine.namespace, slot, now, drained), slot


async def test_a_finished_sales_holds_are_deleted_and_a_live_sales_stay(engine: Engine) -> None:
    ips = [f"203.0.113.{i}" for i in range(12)]
    done = await _held_sale(engine, "hk-done", ips)
    live = await _held_sale(engine, "hk-live", ips)
    held = await _fields(engine, done)
    assert held >= 2 * len(ips), "every purchase holds: an order field and an address field"
    assert await _fields(engine, live) == held
    await engine.tune("hk-done", SaleUpdate(status="closed"))
    await _retire_all(engine, "hk-done")
    queue = housekeeping_queue(engine.namespace)
    assert sorted(m.decode() for m in await engine.redis.smembers(queue)) == done
    # bounded: each call deletes at most its budget; a few calls finish it
    first = await engine.drop_finished_ip_holds(budget=5)
    assert first == 5 and await _fields(engine, done) == held - 5
    for _ in range(held):  # bounded loop: at least one field goes per call
        if not await engine.drop_finished_ip_holds(budget=5):
            break
    assert await _fields(engine, done) == 0
    assert not await engine.redis.exists(queue), "the queue empties once the holds are gone"
    # the live sale was never queued; and even queued by mistake, it is left alone
    await engine.redis.sadd(queue, *live)
    assert await engine.drop_finished_ip_holds() == 0
    assert await _fields(engine, live) == held
    assert not await engine.redis.exists(queue)
    # the finished sale still reads as before: its orders, counters and settings
    sale = await engine.get_sale("hk-done")
    assert (sale.status, sale.sold) == ("closed", len(ips))


async def test_a_retired_slot_without_holds_is_not_queued(engine: Engine) -> None:
    await make_sale(engine, "hk-plain", size=3, buckets=B)
    await engine.tune("hk-plain", SaleUpdate(status="closed"))
    await _retire_all(engine, "hk-plain")
    assert not await engine.redis.exists(housekeeping_queue(engine.namespace))
    assert await engine.drop_finished_ip_holds() == 0
