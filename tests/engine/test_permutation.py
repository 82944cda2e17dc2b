"""Random assignment: a keyed permutation that anyone with the revealed key can recompute."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate
from flashsale.engine.permutation import permute

from .helpers import all_orders, make_sale


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), key=st.text(min_size=1, max_size=20))
def test_permute_is_a_bijection(size: int, key: str) -> None:
    assert sorted(permute(x, size, key) for x in range(size)) == list(range(size))


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
