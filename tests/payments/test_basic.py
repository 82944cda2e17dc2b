"""One payment of each kind, end to end."""

from __future__ import annotations

from flashsale.payments.audit import money_audit
from flashsale.payments.models import PaymentCreate

from .conftest import Flow
from .helpers import eventually

PROVIDER = PaymentCreate(method="provider", provider="sim")


async def test_provider_payment_pays_the_order_through_its_callback(flow: Flow) -> None:
    sale = await flow.sale(size=3)
    order = await flow.buy(sale.sale_id, "alice")
    payment = await flow.service.start_payment(order.order_id, "alice", PROVIDER)
    assert payment.status == "pending"
    assert payment.amount_cents == sale.price_cents
    assert payment.provider_trade_no and payment.pay_url
    await flow.control.pay(payment.pay_url)

    async def paid() -> bool:
        o = await flow.engine.get_order(order.order_id)
        return o is not None and o.status == "paid"

    await eventually(paid, 10)
    got = await flow.engine.get_order(order.order_id)
    assert got is not None and got.payment_id == payment.payment_id
    rows = await flow.service.payments_for_order(order.order_id)
    assert [r.status for r in rows] == ["succeeded"]
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations
    assert audit.captured_cents == sale.price_cents == audit.paid_orders_cents


async def test_balance_payment_needs_the_password_and_pays_at_once(flow: Flow) -> None:
    sale = await flow.sale(size=3, price_cents=500)
    order = await flow.buy(sale.sale_id, "bob")
    await flow.service.set_password("bob", "123456", None)
    await flow.service.credit_wallet("bob", 800, "welcome", actor="ops")
    payment = await flow.service.start_payment(
        order.order_id, "bob", PaymentCreate(method="balance", payment_password="123456")
    )
    assert payment.status == "succeeded"
    got = await flow.engine.get_order(order.order_id)
    assert got is not None and got.status == "paid"
    wallet = await flow.service.wallet("bob")
    assert wallet.balance_cents == 300
    assert [e.kind for e in wallet.entries] == ["debit", "credit"]
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations


async def test_the_timers_complete_delivered_orders_once_the_window_passed(flow: Flow) -> None:
    closing = await flow.sale(after_sales_window_s=0)  # complete as soon as delivered
    lasting = await flow.sale()  # the default window: a week
    done, kept = await flow.buy(closing.sale_id, "u1"), await flow.buy(lasting.sale_id, "u1")
    for order in (done, kept):
        await flow.engine.confirm_payment(order.order_id, f"pay-{order.order_id}")
        await flow.engine.start_delivery(order.order_id)
        await flow.engine.confirm_delivery(order.order_id)
    timers = flow.start_timers()

    async def completed() -> bool:
        order = await flow.engine.get_order(done.order_id)
        return order is not None and order.status == "completed"

    await eventually(completed)
    ticks = timers[0].totals.ticks
    await eventually(lambda: _after(timers[0].totals.ticks, ticks + 2))
    await flow.stop_timers()
    still = await flow.engine.get_order(kept.order_id)
    assert still is not None and still.status == "delivered"


async def _after(now: int, wanted: int) -> bool:
    return now >= wanted
