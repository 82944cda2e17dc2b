"""The per-IP limit of a bucketed drop, exact across its buckets: an address's count lives
in its IP home bucket (crc32(ip) mod B), held there (ip_hold-3) for purchases whose
buyer's home is another bucket, and reconciled (ip_check-3, ip_unhold-2) when the address
is refused (docs/design.md "Bucketed drops")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine, new_order_id, purchase_argv
from flashsale.engine.keys import bucket_slot, home_bucket, slot_of_order
from flashsale.engine.models import SaleUpdate
from flashsale.engine.transport import TransportOptions

from .helpers import make_sale

IP = "198.51.100.7"


def _users(count: int, n: int, *, avoid: int | None = None, prefix: str = "u") -> list[str]:
    """``n`` buyer ids spread over the buckets (none homed in ``avoid``)."""
    users = (f"{prefix}{i}" for i in range(100_000))
    return [u for u in users if home_bucket(u, count) != avoid][:n]


def _homed(bucket: int, count: int, n: int, prefix: str = "h") -> list[str]:
    users = (f"{prefix}{i}" for i in range(100_000))
    return [u for u in users if home_bucket(u, count) == bucket][:n]


async def _ip_state(engine: Engine, sale_id: str, count: int, ip: str) -> tuple[int, int]:
    """The address's count and its number of holds, in its IP home bucket."""
    k = engine.keys(bucket_slot(sale_id, home_bucket(ip, count)))
    counted = int(await engine.redis.hget(k.ips, ip) or 0)
    holds = sum(1 for f in await engine.redis.hkeys(k.ipholds) if f.startswith(b"o:"))
    return counted, holds


async def _redis_ms(engine: Engine) -> int:
    seconds, micros = await engine.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


@pytest.mark.parametrize("count", [2, 3, 4])
async def test_an_address_holds_at_most_the_limit_over_every_bucket(
    engine: Engine, count: int
) -> None:
    sale_id = f"ipx{count}"
    await make_sale(engine, sale_id, size=40, buckets=count, per_ip_limit=2)
    buyers = _users(count, 8)
    assert len({home_bucket(u, count) for u in buyers}) == count  # every bucket a home
    got = [(await engine.purchase(sale_id, buyers[i], ip=IP)).order for i in range(2)]
    for user in buyers[2:]:
        with pytest.raises(errors.LimitReached) as refused:
            await engine.purchase(sale_id, user, ip=IP)
        assert refused.value.extra["scope"] == "ip" and refused.value.extra["limit"] == 2
    assert await _ip_state(engine, sale_id, count, IP) == (
        2,
        sum(slot_of_order(o.order_id) != bucket_slot(sale_id, home_bucket(IP, count)) for o in got),
    )
    # a release frees the address again, whichever bucket the order was in
    await engine.cancel(got[0].order_id)
    again = (await engine.purchase(sale_id, buyers[-1], ip=IP)).order
    assert again.status == "pending_payment"
    with pytest.raises(errors.LimitReached):
        await engine.purchase(sale_id, buyers[-2], ip=IP)
    # another address is not affected
    await engine.purchase(sale_id, buyers[-2], ip="198.51.100.8")
    assert (await _ip_state(engine, sale_id, count, IP))[0] == 2


async def test_concurrent_purchases_from_one_address_get_exactly_the_limit(
    redis_url: str, namespace: str
) -> None:
    """Many buyers (homes in every bucket) from one address at once, over two engines
    (two API processes): exactly the limit is sold, every other answer is the IP limit.
    (Before: each bucket counted the address on its own, up to B x the limit.)"""
    engines = [
        Engine.from_url(
            redis_url, namespace=namespace, transport=TransportOptions(timeout_ms=30_000)
        )
        for _ in range(2)
    ]
    try:
        await make_sale(engines[0], "ipc", size=200, buckets=4, per_ip_limit=3)
        buyers = _users(4, 60, prefix="c")

        async def buy(i: int, user: str) -> str:
            try:
                await engines[i % 2].purchase("ipc", user, ip=IP)
            except errors.LimitReached as refused:
                assert refused.extra["scope"] == "ip" and refused.extra["limit"] == 3
                return "ip"
            return "created"

        outcomes = await asyncio.gather(*(buy(i, u) for i, u in enumerate(buyers)))
        assert outcomes.count("created") == 3 and outcomes.count("ip") == 57
        orders = await engines[0].orders_of_sale("ipc")
        assert len(orders) == 3
        assert (await _ip_state(engines[0], "ipc", 4, IP))[0] == 3
    finally:
        for e in engines:
            await e.aclose()


async def test_a_release_missed_by_the_engine_is_reconciled_at_the_next_refusal(
    redis_url: str, namespace: str, engine: Engine
) -> None:
    """A process that releases an order without ending its hold (it believes the IP limit
    off, or its ip_unhold failed) leaves the address over-counted until the address's next
    refusal, which asks the order's home, finds it released, and sells."""
    count, ip_home = 3, home_bucket(IP, 3)
    await make_sale(engine, "ipr", size=10, buckets=count, per_ip_limit=1)
    away = _users(count, 3, avoid=ip_home, prefix="r")
    first = (await engine.purchase("ipr", away[0], ip=IP)).order
    assert await _ip_state(engine, "ipr", count, IP) == (1, 1)
    timers = Engine.from_url(redis_url, namespace=namespace)
    try:
        timers._ip_limited["ipr"] = False  # so it skips ip_unhold-2
        await timers.cancel(first.order_id)
    finally:
        await timers.aclose()
    assert await _ip_state(engine, "ipr", count, IP) == (1, 1)  # still held
    second = (await engine.purchase("ipr", away[1], ip=IP)).order  # reconciled, then held
    assert await _ip_state(engine, "ipr", count, IP) == (1, 1)
    with pytest.raises(errors.LimitReached):  # the live one is not reconciled away
        await engine.purchase("ipr", away[2], ip=IP)
    assert (await engine.get_order(second.order_id)) is not None


async def test_a_buyer_homed_in_the_ip_home_reconciles_too(
    redis_url: str, namespace: str, engine: Engine
) -> None:
    """A buyer whose home is the address's IP home is checked by purchase-10 there, against
    a count that includes holds: its refusal reconciles them as ip_hold-3's does."""
    count, ip_home = 3, home_bucket(IP, 3)
    await make_sale(engine, "iph", size=10, buckets=count, per_ip_limit=1)
    away = _users(count, 1, avoid=ip_home, prefix="p")[0]
    local = _homed(ip_home, count, 2, prefix="p")
    first = (await engine.purchase("iph", away, ip=IP)).order
    timers = Engine.from_url(redis_url, namespace=namespace)
    try:
        timers._ip_limited["iph"] = False  # its release leaves the hold
        await timers.cancel(first.order_id)
    finally:
        await timers.aclose()
    assert await _ip_state(engine, "iph", count, IP) == (1, 1)
    bought = (await engine.purchase("iph", local[0], ip=IP)).order
    assert slot_of_order(bought.order_id) == bucket_slot("iph", ip_home)
    assert await _ip_state(engine, "iph", count, IP) == (1, 0)  # counted here, no hold
    with pytest.raises(errors.LimitReached):
        await engine.purchase("iph", local[1], ip=IP)


async def _hold(engine: Engine, sale_id: str, count: int, user: str, deadline_ms: int) -> Any:
    """ip_hold-3 as a purchase that then crashes (never runs purchase-10) would leave it."""
    home = bucket_slot(sale_id, home_bucket(user, count))
    k = engine.keys(bucket_slot(sale_id, home_bucket(IP, count)))
    order_id = new_order_id(home)
    reply = await engine._call(
        "ip_hold", [k.meta, k.ips, k.ipholds], [order_id, IP, home, deadline_ms]
    )
    return order_id, reply


async def test_a_hold_whose_purchase_never_ran_is_reconciled_after_its_deadline(
    engine: Engine,
) -> None:
    count = 2
    await make_sale(engine, "ipa", size=10, buckets=count, per_ip_limit=1)
    away = _users(count, 2, avoid=home_bucket(IP, count), prefix="a")
    deadline = await _redis_ms(engine) + 300
    order_id, reply = await _hold(engine, "ipa", count, away[0], deadline)
    assert reply == [1, ""]
    # in flight: the purchase may still arrive, so the address is at its limit
    with pytest.raises(errors.LimitReached):
        await engine.purchase("ipa", away[1], ip=IP)
    assert await _ip_state(engine, "ipa", count, IP) == (1, 1)
    # once the home bucket's clock is past the deadline, the order can never appear
    started = time.monotonic()
    while await _redis_ms(engine) <= deadline:
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.02)
    bought = (await engine.purchase("ipa", away[1], ip=IP)).order
    assert await _ip_state(engine, "ipa", count, IP) == (1, 1)
    ip_k = engine.keys(bucket_slot("ipa", home_bucket(IP, count)))
    holds = await engine.redis.hkeys(ip_k.ipholds)
    assert f"o:{order_id}".encode() not in holds and f"o:{bought.order_id}".encode() in holds
    # a late purchase-10 of the crashed id is refused by its deadline: never sold
    k = engine.keys(bucket_slot("ipa", home_bucket(away[0], count)))
    late = [
        "ipa", away[0], IP, engine.clock(), "", "", 60, order_id, deadline, "h",
    ]  # fmt: skip
    assert (await engine._call("purchase", k.purchase_keys(), purchase_argv(late)))[0] == -18


async def test_a_hold_past_its_deadline_is_ended_at_once(engine: Engine) -> None:
    """A leftover hold (a crash long ago): the next refusal ends it and sells."""
    count = 2
    await make_sale(engine, "ipo", size=10, buckets=count, per_ip_limit=1)
    away = _users(count, 2, avoid=home_bucket(IP, count), prefix="o")
    k = engine.keys(bucket_slot("ipo", home_bucket(IP, count)))
    home = bucket_slot("ipo", home_bucket(away[0], count))
    stale = new_order_id(home)
    packed = msgspec.msgpack.encode([IP, await _redis_ms(engine) - 1, home])
    await engine.redis.hset(k.ipholds, mapping={f"o:{stale}": packed, f"i:{IP}": f"{stale} "})
    await engine.redis.hset(k.ips, IP, 1)
    await engine.purchase("ipo", away[1], ip=IP)
    assert await _ip_state(engine, "ipo", count, IP) == (1, 1)
    assert await engine.redis.hget(k.ipholds, f"o:{stale}") is None


async def test_a_retry_at_the_ip_limit_gets_its_order_back(engine: Engine) -> None:
    """The replay comes before the limits, as on an unbucketed sale: the hold taken for
    the retry is ended, the address's count unchanged."""
    count = 3
    await make_sale(engine, "ipk", size=10, buckets=count, per_ip_limit=1)
    user = _users(count, 1, avoid=home_bucket(IP, count), prefix="k")[0]
    first = await engine.purchase("ipk", user, ip=IP, idempotency_key="k1")
    again = await engine.purchase("ipk", user, ip=IP, idempotency_key="k1")
    assert again.replayed and again.order.order_id == first.order.order_id
    assert await _ip_state(engine, "ipk", count, IP) == (1, 1)
    # a refusal of another check comes first too: the buyer's own limit
    with pytest.raises(errors.LimitReached) as refused:
        await engine.purchase("ipk", user, ip=IP)
    assert refused.value.extra["scope"] == "user"
    assert await _ip_state(engine, "ipk", count, IP) == (1, 1)


async def test_an_ip_limit_turned_on_reaches_an_engine_that_believed_it_off(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the limit off no hold is made (one ip_hold-3 call teaches the engine so);
    once it is turned on, purchase-10 refuses the engine's unheld call and the engine
    holds: exact from then on."""
    count = 2
    await make_sale(engine, "ipt", size=10, buckets=count)
    away = _users(count, 4, avoid=home_bucket(IP, count), prefix="t")
    await engine.purchase("ipt", away[0], ip=IP)
    assert engine._ip_limited["ipt"] is False
    calls: list[str] = []
    real = engine._call

    async def counted(name: str, keys: Any, args: Any, **kw: Any) -> Any:
        calls.append(name)
        return await real(name, keys, args, **kw)

    monkeypatch.setattr(engine, "_call", counted)
    await engine.purchase("ipt", away[1], ip=IP)
    assert calls == ["purchase"]  # the limit off: no hold
    await engine.tune("ipt", SaleUpdate(per_ip_limit=1))
    calls.clear()
    await engine.purchase("ipt", away[2], ip=IP)
    assert calls == ["purchase", "ip_hold", "purchase"]
    with pytest.raises(errors.LimitReached) as refused:
        await engine.purchase("ipt", away[3], ip=IP)
    assert refused.value.extra["scope"] == "ip"


async def test_a_hold_whose_answer_is_lost_is_nothing_bought(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No purchase was sent after a hold that may or may not have been made: the buyer is
    told nothing happened (engine_unavailable, retry), not that the outcome is unknown."""
    count = 2
    await make_sale(engine, "ipl", size=10, buckets=count, per_ip_limit=1)
    user = _users(count, 1, avoid=home_bucket(IP, count), prefix="l")[0]
    real = engine._call

    async def lost(name: str, keys: Any, args: Any, **kw: Any) -> Any:
        reply = await real(name, keys, args, **kw)
        if name == "ip_hold":
            raise errors.OutcomeUnknown("the reply did not come")
        return reply

    monkeypatch.setattr(engine, "_call", lost)
    with pytest.raises(errors.EngineUnavailable):
        await engine.purchase("ipl", user, ip=IP)
    assert await engine.orders_of_sale("ipl") == []
    assert await _ip_state(engine, "ipl", count, IP) == (1, 1)  # until its deadline
