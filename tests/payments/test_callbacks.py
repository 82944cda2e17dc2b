"""Callbacks: duplicated, out of order, forged, stale, replayed, unknown, wrong amount."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from flashsale.engine.models import Order
from flashsale.payments import signing
from flashsale.payments.audit import money_audit
from flashsale.payments.models import Payment, PaymentCreate
from flashsale.payments.paysim.faults import Faults
from flashsale.payments.service import gather_bounded

from .conftest import SECRET, Flow
from .helpers import eventually

PROVIDER = PaymentCreate(method="provider", provider="sim")


async def _attempt(flow: Flow, sale_id: str, user: str) -> tuple[Order, Payment]:
    order = await flow.buy(sale_id, user)
    payment = await flow.service.start_payment(order.order_id, user, PROVIDER)
    return order, payment


def _notice(payment: Payment, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "notify_id": f"ntf_test_{payment.payment_id}",
        "trade_no": payment.provider_trade_no,
        "out_trade_no": payment.payment_id,
        "order_id": payment.order_id,
        "status": "succeeded",
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "paid_at": datetime.now(UTC).isoformat(),
        "notify_time": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def _post(
    flow: Flow, body: dict[str, Any], *, secret: str = SECRET, t: int | None = None
) -> tuple[httpx.Response, dict[str, str], bytes]:
    raw = msgspec.json.encode(body)
    header = signing.sign(raw, secret, int(time.time()) if t is None else t)
    headers = {signing.SIGNATURE_HEADER: header, "Content-Type": "application/json"}
    response = await _send(flow, headers, raw)
    return response, headers, raw


async def _send(flow: Flow, headers: dict[str, str], raw: bytes) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.post(
            f"{flow.server.url}/v1/payments/callbacks/sim", content=raw, headers=headers
        )


async def _state(flow: Flow, order: Order, payment: Payment) -> tuple[Any, ...]:
    got = await flow.engine.get_order(order.order_id)
    row = await flow.service.get_payment(payment.payment_id)
    assert got is not None and row is not None
    notices = await flow.pool.fetchval(
        "SELECT count(*) FROM callback_notices WHERE payment_id = $1", payment.payment_id
    )
    return got.status, got.version, row["status"], row["settlement"], notices


async def test_duplicated_and_out_of_order_callbacks_pay_each_order_once(flow: Flow) -> None:
    await flow.control.set_faults(Faults(duplicate_rate=1.0, out_of_order=True))
    sale = await flow.sale(size=30)
    pairs = [await _attempt(flow, sale.sale_id, f"d{i}") for i in range(30)]
    await gather_bounded(10, [flow.control.pay(p.pay_url or "") for _, p in pairs])
    stats = await flow.wait_idle(timeout_s=30)
    assert stats.notices_duplicated == 30 and stats.notices_stale == 30
    assert stats.callbacks_failed == 0, "every delivery, duplicate or stale, answered 200"
    for order, payment in pairs:
        got = await flow.engine.get_order(order.order_id)
        assert got is not None and got.status == "paid" and got.payment_id == payment.payment_id
        assert got.version == 2, "paid exactly once: purchase, then one confirmation"
    deliveries = await flow.pool.fetch(
        "SELECT n.status, n.deliveries FROM callback_notices n JOIN payments p USING (payment_id)"
        " WHERE p.sale_id = $1",
        sale.sale_id,
    )
    assert sorted({(r["status"], r["deliveries"]) for r in deliveries}) == [
        ("pending", 1),
        ("succeeded", 2),
    ]
    assert (
        await flow.pool.fetchval("SELECT count(*) FROM refunds WHERE sale_id = $1", sale.sale_id)
        == 0
    )
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations
    assert audit.paid_orders == 30 and audit.refunds_cents == 0


async def test_forged_and_stale_callbacks_are_refused_redeliveries_change_nothing(
    flow: Flow,
) -> None:
    sale = await flow.sale(size=3)
    order, payment = await _attempt(flow, sale.sale_id, "eve")
    before = await _state(flow, order, payment)

    forged, _, _ = await _post(flow, _notice(payment), secret="not-the-secret")
    assert forged.status_code == 401
    stale, _, _ = await _post(flow, _notice(payment), t=int(time.time()) - 400)
    assert stale.status_code == 401
    unsigned = await _send(flow, {"Content-Type": "application/json"}, b"{}")
    assert unsigned.status_code == 401
    tampered_body = msgspec.json.encode(_notice(payment))
    header = signing.sign(tampered_body, SECRET, int(time.time()))
    tampered = await _send(
        flow, {signing.SIGNATURE_HEADER: header}, tampered_body.replace(b"9900", b"9901")
    )
    assert tampered.status_code == 401
    assert await _state(flow, order, payment) == before, "nothing changed"
    alerts = await flow.pool.fetch(
        "SELECT class FROM payment_alerts WHERE class IN ('bad_signature', 'stale_callback')"
    )
    assert len(alerts) >= 4

    # A genuine notice is applied once; every redelivery of it answers 200 and changes
    # nothing: the very same signed request, the signature re-encoded, re-signed later.
    notice = _notice(payment)
    genuine, headers, raw = await _post(flow, notice)
    assert genuine.status_code == 200 and genuine.json()["result"] == "kept"
    paid = await _state(flow, order, payment)
    assert paid[:4] == ("paid", 2, "succeeded", "kept")
    t, mac = headers[signing.SIGNATURE_HEADER].split(",")
    reencoded = f"v1={mac[3:].upper()} , {t}"  # the same MAC: hex case, order, spaces
    for again_headers in (headers, {signing.SIGNATURE_HEADER: reencoded}):
        again = await _send(flow, again_headers, raw)
        assert again.status_code == 200 and again.json()["result"] == "duplicate", again.text
    resigned, _, _ = await _post(flow, notice, t=int(time.time()) - 5)
    assert resigned.status_code == 200 and resigned.json()["result"] == "duplicate"
    assert await _state(flow, order, payment) == paid
    deliveries = await flow.pool.fetchval(
        "SELECT deliveries FROM callback_notices WHERE notify_id = $1", notice["notify_id"]
    )
    assert deliveries == 4
    # The same notice id with other facts: the first stand, 200 (no retry storm), paged.
    conflicting, _, _ = await _post(flow, notice | {"status": "closed"})
    assert conflicting.status_code == 200 and conflicting.json()["result"] == "duplicate"
    assert await _state(flow, order, payment) == paid
    assert (
        await flow.pool.fetchval(
            "SELECT count(*) FROM payment_alerts"
            " WHERE class = 'notice_conflict' AND detail->>'notify_id' = $1",
            notice["notify_id"],
        )
        == 1
    )


async def test_wrong_amount_is_not_kept_and_opens_a_refund(flow: Flow) -> None:
    sale = await flow.sale(size=3)
    order, payment = await _attempt(flow, sale.sale_id, "mal")
    answer, _, _ = await _post(flow, _notice(payment, amount_cents=100))
    assert answer.status_code == 200
    got = await flow.engine.get_order(order.order_id)
    assert got is not None and got.status == "pending_payment"
    refunds = [r for r in await flow.refunds.list("pending") if r.payment_id == payment.payment_id]
    assert [(r.reason, r.amount_cents) for r in refunds] == [("amount_mismatch", 100)]
    assert await flow.pool.fetchval(
        "SELECT count(*) FROM payment_alerts WHERE class = 'amount_mismatch' AND payment_id = $1",
        payment.payment_id,
    )


async def test_callback_for_an_unknown_payment_is_acknowledged_and_paged(flow: Flow) -> None:
    fake = Payment(
        payment_id="pay_unknown_" + str(time.time_ns()),
        order_id="nosuch.0",
        method="provider",
        status="pending",
        amount_cents=1,
        provider_trade_no="sim-nothing",
        pay_url=None,
        currency="CNY",
    )
    answer, _, _ = await _post(flow, _notice(fake))
    assert answer.status_code == 200
    assert await flow.pool.fetchval(
        "SELECT count(*) FROM payment_alerts WHERE class = 'unknown_order'"
        " AND detail->>'out_trade_no' = $1",
        fake.payment_id,
    )


async def test_callbacks_delivered_late_after_a_slow_first_answer_still_pay_once(
    flow: Flow,
) -> None:
    await flow.control.set_faults(Faults(delay_s=0.8))
    sale = await flow.sale(size=5)
    pairs = [await _attempt(flow, sale.sale_id, f"l{i}") for i in range(5)]
    for _, p in pairs:
        await flow.control.pay(p.pay_url or "")
    flow.start_timers()

    async def all_paid() -> bool:
        return (await flow.engine.get_sale(sale.sale_id)).sold == 5

    await eventually(all_paid, 15)
    await flow.wait_idle(timeout_s=15)
    await flow.stop_timers()
    for order, payment in pairs:
        got = await flow.engine.get_order(order.order_id)
        assert got is not None and got.payment_id == payment.payment_id and got.version == 2
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations
