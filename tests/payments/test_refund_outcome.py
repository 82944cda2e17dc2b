"""An approved refund says where its money is, and its error goes once the money is sent."""

from __future__ import annotations

from flashsale.payments.models import PaymentCreate
from flashsale.payments.provider import SimProvider
from flashsale.payments.refunds import Refunds, outcome
from flashsale.payments.service import PaymentService

from .conftest import FAST_PASSWORDS, SECRET, Flow
from .helpers import eventually

PROVIDER = PaymentCreate(method="provider", provider="sim")


async def test_a_queued_refund_loses_its_error_once_the_timers_send_it(flow: Flow) -> None:
    sale = await flow.sale(size=1)
    order = await flow.buy(sale.sale_id, "second-thoughts")
    payment = await flow.service.start_payment(order.order_id, order.user_id, PROVIDER)
    await flow.control.pay(payment.pay_url or "")

    async def kept() -> bool:
        row = await flow.service.get_payment(payment.payment_id)
        return row is not None and row["settlement"] == "kept"

    await eventually(kept, 10)
    await flow.service.cancel_order(order.order_id, order.user_id)
    [refund] = [r for r in await flow.refunds.list("pending") if r.order_id == order.order_id]
    assert outcome(refund) == "pending"

    # approved where the provider does not answer: queued, with the reason
    dead = SimProvider("http://127.0.0.1:9", SECRET, timeout_s=1.0)
    cut_off = PaymentService(
        flow.pool, flow.engine, {"sim": dead}, flow.service.settings, password_policy=FAST_PASSWORDS
    )
    try:
        approved = await Refunds(cut_off).approve(refund.refund_id, "ops")
    finally:
        await dead.aclose()
    assert approved.status == "approved" and outcome(approved) == "queued"
    assert approved.last_error and approved.next_attempt_at is not None

    # the timers (with the provider back) send it: refunded, and the error is gone
    async def sent() -> bool:
        await flow.refunds.retry_due()
        return (await flow.refunds.get(refund.refund_id)).status == "refunded"

    await eventually(sent, 15, poll_s=0.2)
    done = await flow.refunds.get(refund.refund_id)
    assert outcome(done) == "executed" and done.last_error is None
    assert done.next_attempt_at is None and done.executed_at is not None
