"""Random assignment: a keyed permutation that anyone with the revealed key can recompute."""

from __future__ import annotations

import hashlib

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate, decode_record
from flashsale.engine.permutation import permutation, permute

from .helpers import all_orders, make_sale


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), key=st.text(min_size=1, max_size=20))
def test_permute_is_a_bijection(size: int, key: str) -> None:
    assert sorted(permute(x, size, key) for x in range(size)) == list(range(size))


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), key=st.text(min_size=1, max_size=20))
def test_the_tabled_permutation_is_permute(size: int, key: str) -> None:
    """``permutation`` (a bucketed list's shares) gives what ``permute`` (and pool.lua)
    gives for every element."""
    assert permutation(size, key) == [permute(x, size, key) for x in range(size)]


async def test_lua_draws_match_the_published_permutation(engine: Engine) -> None:
    sale = await make_sale(engine, "fair", size=500, assignment="random", per_user_limit=500)
    assert sale.assignment_commitment and sale.assignment_key is None
    orders = [(await engine.purchase("fair", "whale")).order for _ in range(500)]
    serials = [o.serial for o in orders]
    assert sorted(serials) == list(range(1, 501))  # type: ignore[type-var]
    assert serials != list(range(1, 501))  # not sequential
    closed = await engine.tune("fair", SaleUpdate(status="closed"))
    key = closed.assignment_key
    assert key and hashlib.sha256(key.encode()).hexdigest() == sale.assignment_commitment
    for order in await all_orders(engine, "fair"):
        assert order.draw is not None
        assert order.serial == 1 + permute(order.draw, 500, f"{key}:1")


async def test_ten_million_serial_range_costs_no_per_serial_memory(engine: Engine) -> None:
    await make_sale(engine, "big", size=10_000_000, assignment="random")
    for i in range(50):
        await engine.purchase("big", f"u{i}")
    k = engine.keys("big")
    usage = sum([await engine.redis.memory_usage(key) or 0 for key in (k.meta, k.segments)])
    assert usage < 4096


async def test_verify_recomputes_every_draw_and_catches_a_forged_serial(engine: Engine) -> None:
    from flashsale.engine.models import SerialsSpec
    from flashsale.engine.verify import verify_sale

    await make_sale(engine, "audit-me", size=300, assignment="random", per_user_limit=400)
    await engine.tune("audit-me", SaleUpdate(add_serials=SerialsSpec(range=(1000, 1099))))
    orders = [(await engine.purchase("audit-me", "whale")).order for _ in range(350)]
    await engine.cancel(orders[0].order_id)
    await engine.purchase("audit-me", "late")  # resold: outside the draw sequence
    early = await verify_sale(engine, "audit-me")
    assert not early.ok and early.reason and "closed" in early.reason
    await engine.tune("audit-me", SaleUpdate(status="closed"))
    report = await verify_sale(engine, "audit-me")
    assert report.ok and report.checked == 350 and report.resold == 1, report
    # forge one order's serial: verification must name it
    victim = orders[5]
    orders_key = engine.keys("audit-me").orders
    record = decode_record(await engine.redis.hget(orders_key, victim.order_id))
    record.serial = "999999"
    await engine.redis.hset(orders_key, victim.order_id, msgspec.msgpack.encode(record))
    forged = await verify_sale(engine, "audit-me")
    assert not forged.ok and victim.order_id in forged.mismatches[0]
