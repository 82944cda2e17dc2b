"""paid -> delivering -> delivered -> completed, each a script, and the cancel rules."""

from __future__ import annotations

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import Order

from .helpers import assert_invariants, make_sale


async def _paid(engine: Engine, sale_id: str, user: str) -> Order:
    order = (await engine.purchase(sale_id, user)).order
    return await engine.confirm_payment(order.order_id, f"pay-{user}")


async def test_an_order_is_delivered_then_completed_by_its_buyer(engine: Engine) -> None:
    await make_sale(engine, "d1", size=5)
    order = await _paid(engine, "d1", "u1")
    moved, replay = await engine.start_delivery(order.order_id)
    assert (moved.status, moved.version, replay) == ("delivering", 3, False)
    assert (await engine.start_delivery(order.order_id))[1] is True  # idempotent
    with pytest.raises(errors.OrderInDelivery):
        await engine.request_refund(order.order_id, user_id="u1", reason="changed my mind")
    with pytest.raises(errors.OrderNotPending):
        await engine.complete(order.order_id, user_id="u1")  # not delivered yet
    delivered, _ = await engine.confirm_delivery(order.order_id)
    assert delivered.status == "delivered"
    assert (await engine.confirm_delivery(order.order_id))[1] is True
    for cancel in (
        engine.request_refund(order.order_id, user_id="u1", reason="too late"),
        engine.cancel(order.order_id, user_id="u1"),
    ):
        with pytest.raises(errors.OrderDelivered):
            await cancel
    with pytest.raises(errors.OrderNotFound):
        await engine.complete(order.order_id, user_id="someone else")
    done, _ = await engine.complete(order.order_id, user_id="u1")
    assert (done.status, done.version) == ("completed", 5)
    assert (await engine.complete(order.order_id, user_id="u1"))[1] is True
    with pytest.raises(errors.OrderDelivered):
        await engine.request_refund(order.order_id, user_id="u1", reason="still no")
    orders = await assert_invariants(engine, "d1")  # completed still holds its serial
    assert [o.status for o in orders] == ["completed"]
    with pytest.raises(errors.LimitReached):
        await engine.purchase("d1", "u1")  # and counts toward the buyer's limit


async def test_the_timers_complete_only_after_the_after_sales_window(engine: Engine) -> None:
    sale = await make_sale(engine, "d2", size=5, after_sales_window_s=60)
    assert sale.after_sales_window_s == 60
    order = await _paid(engine, "d2", "u1")
    await engine.start_delivery(order.order_id)
    await engine.confirm_delivery(order.order_id)
    assert await engine.due_completions("d2") == []
    with pytest.raises(errors.NotDue):
        await engine.complete(order.order_id)
    now = engine.clock()
    engine.clock = lambda: now + 60_001
    assert await engine.due_completions("d2") == [order.order_id]
    done, _ = await engine.complete(order.order_id)
    assert done.status == "completed"
    assert await engine.due_completions("d2") == []


async def test_a_delivery_given_up_leaves_the_order_paid_and_refundable(engine: Engine) -> None:
    await make_sale(engine, "d3", size=5)
    order = await _paid(engine, "d3", "u1")
    with pytest.raises(errors.OrderNotPending):
        await engine.confirm_delivery(order.order_id)  # never started
    await engine.start_delivery(order.order_id)
    back, _ = await engine.fail_delivery(order.order_id, "token owned by someone else")
    assert (back.status, back.reason) == ("paid", "token owned by someone else")
    assert (await engine.fail_delivery(order.order_id, "again"))[1] is True
    pending, _ = await engine.request_refund(order.order_id, user_id="u1", reason="refund me")
    assert pending.status == "refund_pending"
    with pytest.raises(errors.OrderNotPending):
        await engine.start_delivery(order.order_id)  # nothing is minted for it now
    await assert_invariants(engine, "d3")
