"""Bucketed drops in the engine: creation, the fast path, borrowing from other buckets,
tune over every bucket, random assignment and verify, and an unbucketed sale unchanged."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import msgspec
import pytest

from flashsale.engine import buckets, errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import bucket_slot, home_bucket, sale_id_of_order, slot_of_order
from flashsale.engine.models import ORDER_ID, SaleCreate, SaleUpdate, SerialsSpec
from flashsale.engine.verify import verify_sale

from .helpers import make_sale


async def _pooled(engine: Engine, sale_id: str) -> int:
    """Serials in the buckets' pools: each one's undrawn window and returned list."""
    found = 0
    for slot in await engine.slots(sale_id):
        k = engine.keys(slot)
        drawn, total = await engine.redis.hmget(k.meta, ["drawn", "total"])
        found += int(total) - int(drawn) + await engine.redis.llen(k.returned)
    return found


def _users_of(bucket: int, count: int, n: int) -> list[str]:
    """``n`` buyer ids whose home is ``bucket``."""
    found = [f"b{i}" for i in range(10_000) if home_bucket(f"b{i}", count) == bucket]
    return found[:n]


async def test_buyers_whose_home_is_dry_borrow_until_every_bucket_is_empty(
    engine: Engine,
) -> None:
    await make_sale(engine, "hot", size=30, buckets=3)
    sale = await engine.get_sale("hot")
    assert (sale.total, sale.available, sale.buckets) == (30, 30, 3)
    # every buyer has the same home: its 10 serials go first, then the other buckets lend
    buyers = _users_of(1, 3, 31)
    got = [(await engine.purchase("hot", user)).order for user in buyers[:30]]
    assert sorted(int(o.serial) for o in got) == list(range(1, 31))  # type: ignore[arg-type]
    assert {slot_of_order(o.order_id) for o in got} == {"hot.1"}  # all at home
    assert all(o.sale_id == "hot" and ORDER_ID.match(o.order_id) for o in got)
    assert {sale_id_of_order(o.order_id) for o in got} == {"hot"}
    with pytest.raises(errors.SoldOut):
        await engine.purchase("hot", buyers[30])
    sale = await engine.get_sale("hot")
    assert (sale.available, sale.reserved, sale.status) == (0, 30, "sold_out")
    # a release goes back to the home bucket, and another bucket's buyer borrows it
    await engine.cancel(got[-1].order_id)
    other = _users_of(2, 3, 1)[0]
    again = (await engine.purchase("hot", other)).order
    assert again.serial == got[-1].serial and slot_of_order(again.order_id) == "hot.2"
    for slot in buckets.slots("hot", 3):
        assert await engine.redis.hlen(engine.keys(slot).claims) == 0  # every claim ended


async def test_the_limit_stays_exact_when_the_home_is_dry(engine: Engine) -> None:
    await make_sale(engine, "lim", size=9, buckets=3, per_user_limit=2)
    user = _users_of(0, 3, 1)[0]
    for filler in _users_of(0, 3, 4)[1:]:
        await engine.purchase("lim", filler)
    first = (await engine.purchase("lim", user)).order  # home dry: borrowed
    second = (await engine.purchase("lim", user)).order
    with pytest.raises(errors.LimitReached) as refused:
        await engine.purchase("lim", user)
    assert set(refused.value.extra["order_ids"]) == {first.order_id, second.order_id}
    assert [o.order_id for o in await engine.buyer_orders("lim", user)] == [
        first.order_id,
        second.order_id,
    ]
    sale = await engine.get_sale("lim")
    assert (sale.reserved, sale.available) == (5, 4) and await _pooled(engine, "lim") == 4


async def test_a_refused_place_gives_the_serial_back(engine: Engine) -> None:
    """Two purchases of one buyer at once, home dry: both pass the home's checks and
    borrow, place-8 refuses the second (limit 1) and its serial goes back."""
    await make_sale(engine, "race", size=4, buckets=2)
    user, *fillers = _users_of(1, 2, 3)
    for filler in fillers:  # bucket 1 holds 2 serials
        await engine.purchase("race", filler)
    results = await asyncio.gather(
        engine.purchase("race", user), engine.purchase("race", user), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["LimitReached", "Purchase"], results
    sale = await engine.get_sale("race")
    assert (sale.reserved, sale.available) == (3, 1) and await _pooled(engine, "race") == 1
    assert await engine.redis.hlen(engine.keys("race").claims) == 0


async def test_tune_reaches_every_bucket_and_added_stock_is_lent(engine: Engine) -> None:
    await make_sale(engine, "tuned", size=4, buckets=2)
    await engine.tune("tuned", SaleUpdate(status="paused"))
    for user in ("x", "y", "z"):
        with pytest.raises(errors.SalePaused):
            await engine.purchase("tuned", user)
    await engine.tune("tuned", SaleUpdate(status="open", per_user_limit=10))
    await engine.tune("tuned", SaleUpdate(add_serials=SerialsSpec(range=(5, 8))))
    assert (await engine.get_sale("tuned")).total == 8
    user = _users_of(1, 2, 1)[0]
    got = [(await engine.purchase("tuned", user)).order.serial for _ in range(8)]
    assert sorted(got) == list(range(1, 9))  # type: ignore[type-var]


async def test_a_random_bucketed_drop_verifies(engine: Engine) -> None:
    await make_sale(engine, "rnd", size=40, buckets=3, assignment="random", per_user_limit=40)
    bought = []
    for bucket in range(3):
        user = _users_of(bucket, 3, 1)[0]
        for _ in range(12 if bucket else 16):
            bought.append((await engine.purchase("rnd", user)).order)
    assert len({o.serial for o in bought}) == 40
    assert Counter(o.draw is not None for o in bought)[True] == 40
    await engine.tune("rnd", SaleUpdate(status="closed"))
    report = await verify_sale(engine, "rnd")
    assert report.ok and report.checked == 40, report


async def test_an_unbucketed_purchase_is_one_script_call_on_the_sales_own_keys(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_sale(engine, "plain", size=3)
    assert await engine.redis.hget(engine.keys("plain").meta, "buckets") is None
    calls: list[tuple[str, list[Any]]] = []
    real = engine._call

    async def counted(name: str, keys: Any, args: Any, **kw: Any) -> Any:
        calls.append((name, list(keys)))
        return await real(name, keys, args, **kw)

    monkeypatch.setattr(engine, "_call", counted)
    order = (await engine.purchase("plain", "alice", ip="10.0.0.1")).order
    assert calls == [("purchase", engine.keys("plain").purchase_keys())]
    assert slot_of_order(order.order_id) == "plain" == bucket_slot("plain", 0)


def test_buckets_are_1_to_16() -> None:
    base = {"name": "n", "serials": {"range": [1, 10]}}
    assert msgspec.convert(base, SaleCreate).buckets == 1
    for bad in (0, 17, "2"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**base, "buckets": bad}, SaleCreate)


async def test_the_sweeper_leaves_young_claims_and_fences_old_ones(engine: Engine) -> None:
    """A claim younger than the sweep's age may still be placed: the sweeper leaves it.
    An old one is fenced at home and its serial comes back; its place then refuses."""
    await make_sale(engine, "swept", size=4, buckets=2)
    home, lender = engine.keys("swept.1"), engine.keys("swept")
    order_id = f"swept.1.{'ab' * 10}"
    took = await engine._take(lender, order_id, home.sale_id, "")
    assert int(took[0]) == 1
    assert await engine.sweep_claims("swept") == 0  # young: left alone
    assert (await engine.get_sale("swept")).reserved == 1  # in flight counts as reserved
    assert await engine.sweep_claims("swept", older_than_ms=0) == 1
    assert await _pooled(engine, "swept") == 4 and (await engine.get_sale("swept")).available == 4
    args = ["swept", "late", "", engine.clock(), "", "", 60, order_id, "", ""]
    placed = await engine._place(home, None, [*args, took[1], took[2], took[3]])
    assert int(placed[0]) == errors.Reply.FENCED
    assert await engine.get_order(order_id) is None


async def test_a_burst_on_a_bucketed_drop_sells_each_serial_once(engine: Engine) -> None:
    """400 purchases at once by 200 buyers (limit 2) for 90 serials over 3 buckets: every
    serial sold once, nobody over the limit, sold out with every bucket empty."""
    await make_sale(engine, "burst", size=90, buckets=3, per_user_limit=2)
    results = await asyncio.gather(
        *(engine.purchase("burst", f"u{i % 200}") for i in range(400)), return_exceptions=True
    )
    sold = [r.order for r in results if not isinstance(r, BaseException)]
    refused = Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
    assert len(sold) == 90 and set(refused) <= {"SoldOut", "LimitReached"}, refused
    assert sorted(int(o.serial) for o in sold) == list(range(1, 91))  # type: ignore[arg-type]
    assert max(Counter(o.user_id for o in sold).values()) <= 2
    assert await _pooled(engine, "burst") == 0
    sale = await engine.get_sale("burst")
    assert (sale.reserved, sale.available, sale.status) == (90, 0, "sold_out")
    for slot in buckets.slots("burst", 3):
        assert await engine.redis.hlen(engine.keys(slot).claims) == 0
