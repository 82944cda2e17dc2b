"""The money audit and the invalidation of a sale's pending orders work in pages.

Small pages over a real sale (real Redis, PostgreSQL and the provider simulator):
the audit walked page by page says what it says in one page and finds a fault on
the last page; invalidation cancels every pending order, never stopping at a page.
"""

from __future__ import annotations

from typing import Any

from flashsale.payments.audit import money_audit
from flashsale.payments.models import PaymentCreate

from .conftest import Flow
from .helpers import eventually

PROVIDER = PaymentCreate(method="provider", provider="sim")


def _numbers(audit: Any) -> tuple[Any, ...]:
    return (
        audit.ok,
        audit.captured_cents,
        audit.paid_orders_cents,
        audit.paid_orders,
        audit.payments,
        audit.refunds_cents,
    )


async def test_the_money_audit_walks_kept_payments_in_pages(flow: Flow) -> None:
    sale = await flow.sale(size=7)
    payments = []
    for i in range(7):
        order = await flow.buy(sale.sale_id, f"pg{i}")
        payment = await flow.service.start_payment(order.order_id, order.user_id, PROVIDER)
        await flow.control.pay(payment.pay_url or "")
        payments.append(payment)

    async def all_kept() -> bool:
        count = await flow.pool.fetchval(
            "SELECT count(*) FROM payments WHERE sale_id = $1 AND settlement = 'kept'",
            sale.sale_id,
        )
        return bool(count == 7)

    await eventually(all_kept, 20)
    whole = await money_audit(flow.pool, sale.sale_id, flow.engine)
    paged = await money_audit(flow.pool, sale.sale_id, flow.engine, page=2)
    assert _numbers(whole) == _numbers(paged) == (True, 7 * 9900, 7 * 9900, 7, 7, 0)
    # a fault on the last page is found
    last = max(p.payment_id for p in payments)
    await flow.pool.execute(
        "UPDATE payments SET captured_cents = captured_cents + 1 WHERE payment_id = $1", last
    )
    paged = await money_audit(flow.pool, sale.sale_id, flow.engine, page=2)
    assert not paged.ok
    assert any("captured amount differs" in v for v in paged.violations), paged.violations


async def test_invalidation_cancels_every_pending_order_page_by_page(flow: Flow) -> None:
    sale = await flow.sale(size=12)
    orders = [await flow.buy(sale.sale_id, f"inv{i}") for i in range(12)]
    pages = [
        page
        async for page in flow.service.cancellation.invalidate_pending_orders(
            sale.sale_id, "price changed", page=5
        )
    ]
    assert [len(page) for page in pages] == [5, 5, 2]  # the answer is paged too
    assert sorted(i for page in pages for i in page) == sorted(o.order_id for o in orders)
    assert await flow.engine.pending_order_ids(sale.sale_id) == []
