"""delivered | completed -> refunded (an approved after-sales ticket, its money back): the
token was minted, so the serial never returns to the pool and stays in ``sold``, and the
buyer, who holds the token, is still counted for the limits."""

from __future__ import annotations

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, SaleUpdate
from flashsale.engine.verify import verify_sale

from .helpers import assert_invariants, make_sale


async def _delivered(engine: Engine, sale_id: str, user: str) -> Order:
    order = (await engine.purchase(sale_id, user, ip="10.0.0.1")).order
    await engine.confirm_payment(order.order_id, f"pay-{user}")
    await engine.start_delivery(order.order_id)
    delivered, _ = await engine.confirm_delivery(order.order_id)
    return delivered


async def test_a_delivered_or_completed_order_is_refunded_once_and_stays_sold(
    engine: Engine,
) -> None:
    await make_sale(engine, "rd1", size=3, per_user_limit=1)
    first = await _delivered(engine, "rd1", "u1")
    second = await _delivered(engine, "rd1", "u2")
    await engine.complete(second.order_id, user_id="u2")
    k = engine.keys("rd1")
    assert await engine.redis.zscore(k.completion, first.order_id) is not None

    for order in (first, second):
        refunded, replay = await engine.refund_delivered(order.order_id, reason="after-sales t")
        assert (refunded.status, refunded.reason, replay) == ("refunded", "after-sales t", False)
        again, replay = await engine.refund_delivered(order.order_id, reason="again")
        assert (again.status, again.version, replay) == ("refunded", refunded.version, True)

    sale = await engine.get_sale("rd1")
    assert (sale.sold, sale.reserved, sale.available) == (2, 0, 1)
    assert await engine.redis.llen(k.returned) == 0  # nothing goes back to the pool
    assert int(await engine.redis.hget(k.meta, "kept")) == 2
    assert await engine.redis.zscore(k.completion, first.order_id) is None
    assert int(await engine.redis.hget(k.ips, "10.0.0.1")) == 2  # the address still holds both
    orders = await assert_invariants(engine, "rd1")
    assert sorted(o.status for o in orders) == ["refunded", "refunded"]
    # the buyer still holds the token: it counts toward the limit (1 per buyer)
    with pytest.raises(errors.LimitReached):
        await engine.purchase("rd1", "u1")
    third = (await engine.purchase("rd1", "u3")).order
    assert third.serial not in {first.serial, second.serial}
    with pytest.raises(errors.SoldOut):
        await engine.purchase("rd1", "u4")
    await assert_invariants(engine, "rd1")


async def test_only_delivered_or_completed_orders_are_refunded_so(engine: Engine) -> None:
    await make_sale(engine, "rd2", size=5)
    pending = (await engine.purchase("rd2", "u1")).order
    paid = (await engine.purchase("rd2", "u2")).order
    await engine.confirm_payment(paid.order_id, "pay-u2")
    delivering = (await engine.purchase("rd2", "u3")).order
    await engine.confirm_payment(delivering.order_id, "pay-u3")
    await engine.start_delivery(delivering.order_id)
    for order in (pending, paid, delivering):
        with pytest.raises(errors.OrderNotPending):
            await engine.refund_delivered(order.order_id, reason="no")
    with pytest.raises(errors.OrderNotFound):
        await engine.refund_delivered("rd2.00000000000000000000", reason="no")
    sale = await engine.get_sale("rd2")
    assert (sale.sold, sale.reserved) == (2, 1)
    await assert_invariants(engine, "rd2")


async def test_verify_still_recomputes_a_refunded_delivered_orders_draw(engine: Engine) -> None:
    await make_sale(engine, "rd3", size=20, assignment="random", per_user_limit=5)
    orders = [await _delivered(engine, "rd3", f"u{n}") for n in range(3)]
    await engine.refund_delivered(orders[1].order_id, reason="after-sales t")
    await engine.tune("rd3", SaleUpdate(status="closed"))
    report = await verify_sale(engine, "rd3")
    assert report.ok and (report.checked, report.resold) == (3, 0), report
