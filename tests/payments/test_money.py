"""Money is kept at most once per order; everything else waits as a refund for review."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from flashsale.engine import errors as engine_errors
from flashsale.engine.models import Order
from flashsale.engine.statuses import HOLDS_SERIAL
from flashsale.payments import errors
from flashsale.payments.audit import money_audit
from flashsale.payments.models import Payment, PaymentCreate
from flashsale.payments.paysim.faults import Faults
from flashsale.payments.paysim.state import SimError
from flashsale.payments.service import gather_bounded

from .conftest import Flow
from .helpers import eventually

PROVIDER = PaymentCreate(method="provider", provider="sim")
HOLD = Faults(delay_s=1.0)  # callbacks of this trade arrive a second late


async def _attempt(flow: Flow, order: Order) -> Payment:
    return await flow.service.start_payment(order.order_id, order.user_id, PROVIDER)


async def _status(flow: Flow, order_id: str) -> str:
    got = await flow.engine.get_order(order_id)
    assert got is not None
    return got.status


async def test_two_attempts_both_paid_keep_one_and_refund_the_other(flow: Flow) -> None:
    sale = await flow.sale(size=3)
    order = await flow.buy(sale.sale_id, "carol")
    first, second = await _attempt(flow, order), await _attempt(flow, order)
    for p in (first, second):
        await flow.control.set_trade_faults(p.provider_trade_no or "", HOLD)
        await flow.control.pay(p.pay_url or "")
    await flow.wait_idle(timeout_s=15)

    got = await flow.engine.get_order(order.order_id)
    assert got is not None and got.status == "paid"
    assert got.payment_id in (first.payment_id, second.payment_id)
    loser = second if got.payment_id == first.payment_id else first
    refunds = await flow.refunds.list("pending")
    mine = [r for r in refunds if r.order_id == order.order_id]
    assert [(r.payment_id, r.reason, r.amount_cents) for r in mine] == [
        (loser.payment_id, "duplicate_payment", sale.price_cents)
    ]
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations
    assert audit.captured_cents == 2 * sale.price_cents
    assert audit.paid_orders_cents == sale.price_cents == audit.refunds_cents


async def test_a_paid_order_closes_its_other_open_trades(flow: Flow) -> None:
    sale = await flow.sale(size=3)
    order = await flow.buy(sale.sale_id, "dan")
    first, second = await _attempt(flow, order), await _attempt(flow, order)
    await flow.control.pay(first.pay_url or "")
    await eventually(lambda: _is(flow, order.order_id, "paid"), 10)
    await eventually(lambda: _payment_is(flow, second.payment_id, "closed"), 10)
    with pytest.raises(SimError) as refused:
        await flow.control.pay(second.pay_url or "")
    assert refused.value.code == "trade_closed"


async def _is(flow: Flow, order_id: str, status: str) -> bool:
    return await _status(flow, order_id) == status


async def _payment_is(flow: Flow, payment_id: str, status: str) -> bool:
    row = await flow.service.get_payment(payment_id)
    return row is not None and row["status"] == status


async def test_payment_after_expiry_is_refunded_and_the_serial_is_not_sold_twice(
    flow: Flow,
) -> None:
    sale = await flow.sale(size=1, payment_timeout_s=1)
    order = await flow.buy(sale.sale_id, "late")
    payment = await _attempt(flow, order)
    await asyncio.sleep(1.1)
    # An expiry that did not consult the provider (e.g. an engine-only timer).
    expired = await flow.engine.expire(order.order_id)
    assert expired.status == "expired"
    resold = await flow.buy(sale.sale_id, "next")
    assert resold.serial == order.serial
    await flow.control.pay(payment.pay_url or "")
    await eventually(lambda: _payment_is(flow, payment.payment_id, "succeeded"), 10)
    await eventually(lambda: _has_refund(flow, payment.payment_id), 10)

    refunds = [r for r in await flow.refunds.list("pending") if r.payment_id == payment.payment_id]
    assert [r.reason for r in refunds] == ["late_payment"]
    assert await _status(flow, order.order_id) == "expired"
    orders = await flow.engine.orders_of_sale(sale.sale_id)
    live = [o for o in orders if o.status in HOLDS_SERIAL]
    assert [o.order_id for o in live] == [resold.order_id], "one live holder of the serial"
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations


async def _has_refund(flow: Flow, payment_id: str) -> bool:
    return bool(
        await flow.pool.fetchval("SELECT count(*) FROM refunds WHERE payment_id = $1", payment_id)
    )


async def test_timers_expire_unpaid_orders_and_close_their_trades(flow: Flow) -> None:
    sale = await flow.sale(size=2, payment_timeout_s=1)
    order = await flow.buy(sale.sale_id, "slow")
    payment = await _attempt(flow, order)
    flow.start_timers()
    await eventually(lambda: _is(flow, order.order_id, "expired"), 10)
    assert await _payment_is(flow, payment.payment_id, "closed")
    with pytest.raises(SimError) as refused:
        await flow.control.pay(payment.pay_url or "")
    assert refused.value.code == "trade_closed"
    assert (await flow.engine.get_sale(sale.sale_id)).available == 2


async def test_expiry_asks_the_provider_first_and_never_expires_a_paid_order(
    flow: Flow,
) -> None:
    sale = await flow.sale(size=1, payment_timeout_s=2)
    order = await flow.buy(sale.sale_id, "last-second")
    payment = await _attempt(flow, order)
    # Paid, but its callbacks are lost; the active query would come too late.
    await flow.control.set_trade_faults(payment.provider_trade_no or "", Faults(drop_rate=1.0))
    await flow.pool.execute(
        "UPDATE payments SET next_query_at = now() + interval '1 hour' WHERE payment_id = $1",
        payment.payment_id,
    )
    await flow.control.pay(payment.pay_url or "")
    flow.start_timers()
    await eventually(lambda: _is(flow, order.order_id, "paid"), 10)
    row = await flow.service.get_payment(payment.payment_id)
    assert row is not None and row["confirmed_via"] == "query"


async def test_expiry_racing_callbacks_never_expires_a_kept_payment(flow: Flow) -> None:
    """Many orders whose buyers pay around the deadline while the timers expire them."""
    n = 120
    rng = random.Random(7)
    await flow.control.set_faults(Faults(drop_rate=0.3))
    sale = await flow.sale(size=n, payment_timeout_s=3)
    flow.start_timers(processes=2, interval_s=0.05)

    async def buyer(i: int) -> tuple[Order, Payment]:
        order = await flow.buy(sale.sale_id, f"r{i}")
        return order, await _attempt(flow, order)

    pairs: list[tuple[Order, Payment]] = await gather_bounded(16, [buyer(i) for i in range(n)])

    async def pay_around_deadline(order: Order, payment: Payment) -> str:
        # pay somewhere from 0.5 s before the deadline to 1.5 s after it
        until_deadline = order.expires_at.timestamp() - time.time()
        await asyncio.sleep(max(0.0, until_deadline + rng.uniform(-0.5, 1.5)))
        try:
            await flow.control.pay(payment.pay_url or "")
            return "paid"
        except SimError as exc:
            return exc.code

    outcomes = await gather_bounded(n, [pay_around_deadline(o, p) for o, p in pairs])
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes

    async def settled() -> bool:
        pending = await flow.pool.fetchval(
            "SELECT count(*) FROM payments WHERE sale_id = $1"
            " AND (status = 'pending' OR (status = 'succeeded' AND settlement IS NULL))",
            sale.sale_id,
        )
        s = await flow.engine.get_sale(sale.sale_id)
        return pending == 0 and s.reserved == 0

    await eventually(settled, 30, 0.1)
    await flow.stop_timers()
    by_order = {o.order_id: o for o in await flow.engine.orders_of_sale(sale.sale_id)}
    rows = await flow.pool.fetch("SELECT * FROM payments WHERE sale_id = $1", sale.sale_id)
    for row in rows:
        order = by_order[row["order_id"]]
        if row["settlement"] == "kept":
            assert order.status == "paid" and order.payment_id == row["payment_id"]
        if row["status"] == "succeeded" and order.status != "paid":
            assert row["settlement"] == "refund"
    paid = sum(o.status == "paid" for o in by_order.values())
    expired = sum(o.status == "expired" for o in by_order.values())
    assert paid + expired == n
    assert paid == outcomes.count("paid") - await flow.pool.fetchval(
        "SELECT count(*) FROM refunds WHERE sale_id = $1", sale.sale_id
    )
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations
    print(f"\nrace: {paid} paid, {expired} expired, pays refused {outcomes.count('trade_closed')}")


async def test_internal_loss_is_repaired_by_the_timers(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    sale = await flow.sale(size=2)
    order = await flow.buy(sale.sale_id, "lost")
    payment = await _attempt(flow, order)
    real = flow.engine.confirm_payment
    calls = 0

    async def redis_down(order_id: str, payment_id: str) -> Order:
        nonlocal calls
        calls += 1
        raise engine_errors.EngineUnavailable("Redis did not answer (test)")

    monkeypatch.setattr(flow.engine, "confirm_payment", redis_down)
    await flow.control.pay(payment.pay_url or "")
    await eventually(lambda: _payment_is(flow, payment.payment_id, "succeeded"), 10)
    await flow.wait_idle(timeout_s=10)
    assert calls >= 1 and await _status(flow, order.order_id) == "pending_payment"
    monkeypatch.setattr(flow.engine, "confirm_payment", real)
    flow.start_timers()
    await eventually(lambda: _is(flow, order.order_id, "paid"), 10)
    row = await flow.service.get_payment(payment.payment_id)
    assert row is not None and row["settlement"] == "kept"


async def test_cancel_of_a_pending_order_closes_its_trade(flow: Flow) -> None:
    sale = await flow.sale(size=2)
    order = await flow.buy(sale.sale_id, "quitter")
    payment = await _attempt(flow, order)
    with pytest.raises(errors.OrderNotFound):
        await flow.service.cancel_order(order.order_id, "someone-else")
    cancelled = await flow.service.cancel_order(order.order_id, "quitter")
    assert cancelled.status == "cancelled"
    assert await _payment_is(flow, payment.payment_id, "closed")
    with pytest.raises(SimError):
        await flow.control.pay(payment.pay_url or "")
    with pytest.raises(errors.OrderNotPayable):
        await _attempt(flow, order)


async def test_cancel_of_a_paid_order_waits_for_review_then_refunds(flow: Flow) -> None:
    sale = await flow.sale(size=1)
    order = await flow.buy(sale.sale_id, "regret")
    payment = await _attempt(flow, order)
    await flow.control.pay(payment.pay_url or "")
    await eventually(lambda: _is(flow, order.order_id, "paid"), 10)
    await eventually(lambda: _kept(flow, payment.payment_id), 10)

    pending = await flow.service.cancel_order(order.order_id, "regret")
    assert pending.status == "refund_pending"
    again = await flow.service.cancel_order(order.order_id, "regret")
    assert again.status == "refund_pending"
    [refund] = [r for r in await flow.refunds.list("pending") if r.order_id == order.order_id]
    assert refund.reason == "order_cancelled" and refund.payment_id == payment.payment_id
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations

    approved = await flow.refunds.approve(refund.refund_id, "ops-1")
    assert approved.status == "refunded" and approved.decided_by == "ops-1"
    assert approved.decided_at is not None and approved.executed_at is not None
    assert await _status(flow, order.order_id) == "refunded"
    trade = await flow.provider.query(payment.provider_trade_no or "")
    assert trade.refunded_cents == sale.price_cents
    s = await flow.engine.get_sale(sale.sale_id)
    assert (s.available, s.sold) == (1, 0), "the serial is back in the pool"
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations


async def _kept(flow: Flow, payment_id: str) -> bool:
    row = await flow.service.get_payment(payment_id)
    return row is not None and row["settlement"] == "kept"


async def test_rejected_cancellation_refund_makes_the_order_paid_again(flow: Flow) -> None:
    sale = await flow.sale(size=1)
    order = await flow.buy(sale.sale_id, "keeper")
    payment = await _attempt(flow, order)
    await flow.control.pay(payment.pay_url or "")
    await eventually(lambda: _kept(flow, payment.payment_id), 10)
    await flow.service.cancel_order(order.order_id, None, reason="ops cancel")
    [refund] = [r for r in await flow.refunds.list("pending") if r.order_id == order.order_id]
    rejected = await flow.refunds.reject(refund.refund_id, "ops-2")
    assert rejected.status == "rejected"
    assert await _status(flow, order.order_id) == "paid"
    assert (await flow.refunds.reject(refund.refund_id, "ops-3")).decided_by == "ops-2"
    with pytest.raises(errors.RefundAlreadyDecided):
        await flow.refunds.approve(refund.refund_id, "ops-3")
    # asking again would leave the order refund_pending with nothing to review: refused
    with pytest.raises(errors.OrderNotCancellable, match="already decided"):
        await flow.service.cancel_order(order.order_id, "keeper")
    assert await _status(flow, order.order_id) == "paid"
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations


async def test_concurrent_approvals_refund_exactly_once(flow: Flow) -> None:
    sale = await flow.sale(size=1)
    order = await flow.buy(sale.sale_id, "twice")
    first, second = await _attempt(flow, order), await _attempt(flow, order)
    for p in (first, second):
        await flow.control.set_trade_faults(p.provider_trade_no or "", HOLD)
        await flow.control.pay(p.pay_url or "")
    await flow.wait_idle(timeout_s=15)
    [refund] = [r for r in await flow.refunds.list("pending") if r.order_id == order.order_id]
    before = await flow.stats()

    results = await asyncio.gather(
        *(flow.refunds.approve(refund.refund_id, f"ops-{i}") for i in range(8))
    )
    # The winner executes; the others answer the refund as it stands (approved, executing).
    assert {r.status for r in results} <= {"approved", "refunded"}
    assert (await flow.refunds.get(refund.refund_id)).status == "refunded"
    assert len({r.decided_by for r in results}) == 1, "one decision, recorded once"
    after = await flow.stats()
    assert after.refunds - before.refunds == 1
    assert after.refunds_replayed == before.refunds_replayed
    with pytest.raises(errors.RefundAlreadyDecided):
        await flow.refunds.reject(refund.refund_id, "ops-x")
    replay = await flow.refunds.approve(refund.refund_id, "ops-y")
    assert replay.decided_by == results[0].decided_by
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations


async def test_price_change_or_delisting_cancels_pending_orders(flow: Flow) -> None:
    sale = await flow.sale(size=3)
    a = await flow.buy(sale.sale_id, "pa")
    b = await flow.buy(sale.sale_id, "pb")
    pa = await _attempt(flow, a)
    cancelled = [
        i
        async for page in flow.service.invalidate_pending_orders(sale.sale_id, "sale delisted")
        for i in page
    ]
    assert sorted(cancelled) == sorted([a.order_id, b.order_id])
    got = await flow.engine.get_order(a.order_id)
    assert got is not None and got.status == "cancelled" and got.reason == "sale delisted"
    assert await _payment_is(flow, pa.payment_id, "closed")
    with pytest.raises(errors.OrderNotPayable):
        await _attempt(flow, b)
