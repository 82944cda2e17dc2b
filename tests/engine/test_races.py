"""cancel vs expire vs confirm_payment on the same order: exactly one wins, once."""

from __future__ import annotations

import asyncio

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine

from .helpers import assert_invariants, make_sale


async def test_cancel_expire_confirm_race_has_exactly_one_winner(engine: Engine) -> None:
    await make_sale(engine, "race", size=200, payment_timeout_s=1)
    now = engine.clock()
    engine.clock = lambda: now  # purchase at `now`
    orders = [(await engine.purchase("race", f"u{i}")).order for i in range(200)]
    engine.clock = lambda: now + 5_000  # every deadline has passed
    outcomes: dict[str, int] = {"cancelled": 0, "expired": 0, "paid": 0}
    for order in orders:
        results = await asyncio.gather(
            engine.cancel(order.order_id, user_id=order.user_id),
            engine.expire(order.order_id),
            engine.confirm_payment(order.order_id, f"pay-{order.order_id}"),
            engine.cancel(order.order_id),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1, results
        losers = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(r, errors.OrderNotPending) for r in losers)
        outcomes[winners[0].status] += 1
    assert sum(outcomes.values()) == 200
    orders_now = await assert_invariants(engine, "race")
    paid = sum(o.status == "paid" for o in orders_now)
    sale = await engine.get_sale("race")
    assert sale.sold == paid and sale.available == 200 - paid


async def test_expire_refuses_before_the_deadline(engine: Engine) -> None:
    await make_sale(engine, "due", size=5, payment_timeout_s=60)
    order = (await engine.purchase("due", "u1")).order
    with pytest.raises(errors.NotDue):
        await engine.expire(order.order_id)
    assert (await engine.get_order(order.order_id)).status == "pending_payment"  # type: ignore[union-attr]


async def test_confirm_after_expiry_is_refused_with_the_status(engine: Engine) -> None:
    await make_sale(engine, "late", size=5, payment_timeout_s=1)
    now = engine.clock()
    engine.clock = lambda: now
    order = (await engine.purchase("late", "u1")).order
    engine.clock = lambda: now + 2_000
    await engine.expire(order.order_id)
    with pytest.raises(errors.OrderNotPending) as refused:
        await engine.confirm_payment(order.order_id, "p1")
    assert refused.value.extra["status"] == "expired"


async def test_duplicate_payment_is_told_apart_from_a_replay(engine: Engine) -> None:
    await make_sale(engine, "dup", size=5)
    order = (await engine.purchase("dup", "u1")).order
    paid = await engine.confirm_payment(order.order_id, "p1")
    assert paid.status == "paid" and paid.payment_id == "p1"
    again = await engine.confirm_payment(order.order_id, "p1")  # the same payment, replayed
    assert again.version == paid.version
    with pytest.raises(errors.OrderNotPending) as other:
        await engine.confirm_payment(order.order_id, "p2")  # a second, different payment
    assert other.value.extra["order"].payment_id == "p1"
    sale = await engine.get_sale("dup")
    assert (sale.sold, sale.reserved) == (1, 0)


async def test_cancel_is_owner_only(engine: Engine) -> None:
    await make_sale(engine, "own", size=5)
    order = (await engine.purchase("own", "alice")).order
    with pytest.raises(errors.OrderNotFound):
        await engine.cancel(order.order_id, user_id="mallory")
    assert (await engine.cancel(order.order_id, user_id="alice")).status == "cancelled"


async def test_a_redis_still_loading_is_unavailable_not_an_error(engine: Engine) -> None:
    """Unit test of the mapping: a LOADING/BUSY reply means the script did not run."""
    from redis.exceptions import ResponseError

    class Loading:
        async def call(self, *_: object) -> object:
            raise ResponseError("LOADING Redis is loading the dataset in memory")

        async def aclose(self) -> None:
            return None

    real, engine._router = engine._router, Loading()
    try:
        with pytest.raises(errors.EngineUnavailable):
            await engine.purchase("any", "u1")
    finally:
        engine._router = real
