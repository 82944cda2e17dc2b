"""Lost callbacks (掉单): the active query finds every payment the callbacks did not bring."""

from __future__ import annotations

import asyncio
import time

from flashsale.payments.audit import money_audit
from flashsale.payments.errors import ProviderUnavailable
from flashsale.payments.models import PaymentCreate
from flashsale.payments.paysim.faults import Faults
from flashsale.payments.service import gather_bounded

from .conftest import Flow
from .helpers import eventually

ORDERS = 2000
PROVIDER = PaymentCreate(method="provider", provider="sim")


async def test_2000_paid_orders_with_30_percent_of_callbacks_dropped_all_end_paid(
    flow: Flow,
) -> None:
    await flow.control.set_faults(Faults(drop_rate=0.3))
    sale = await flow.sale(size=ORDERS, payment_timeout_s=300)
    flow.start_timers(processes=2)
    started = time.monotonic()

    async def buyer(i: int) -> str:
        user = f"u{i}"
        order = await flow.buy(sale.sale_id, user)
        for attempt in range(3):  # a buyer whose attempt timed out starts another
            try:
                payment = await flow.service.start_payment(order.order_id, user, PROVIDER)
                break
            except ProviderUnavailable:
                if attempt == 2:
                    raise
        assert payment.pay_url is not None
        await flow.control.pay(payment.pay_url)
        return order.order_id

    results = await gather_bounded(32, [buyer(i) for i in range(ORDERS)])
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    order_ids: list[str] = list(results)
    bought_s = time.monotonic() - started

    async def all_paid() -> bool:
        s = await flow.engine.get_sale(sale.sale_id)
        return s.sold == ORDERS

    await eventually(all_paid, timeout_s=120, poll_s=0.2)
    elapsed = time.monotonic() - started
    await flow.stop_timers()

    orders = await flow.engine.orders_of_sale(sale.sale_id)
    assert len(orders) == ORDERS
    assert {o.status for o in orders} == {"paid"}, "none expired, none left pending"
    assert {o.order_id for o in orders} == set(order_ids)
    stats = await flow.stats()
    dropped = stats.callbacks_dropped
    assert 0.25 * ORDERS < dropped < 0.35 * ORDERS, dropped
    via = {
        r["confirmed_via"]: r["n"]
        for r in await flow.pool.fetch(
            "SELECT confirmed_via, count(*) AS n FROM payments WHERE sale_id = $1"
            " GROUP BY confirmed_via",
            sale.sale_id,
        )
    }
    recovered = via.get("query", 0)
    assert recovered >= dropped, via
    refunds = await flow.pool.fetchval(
        "SELECT count(*) FROM refunds WHERE sale_id = $1", sale.sale_id
    )
    assert refunds == 0
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations[:5]
    assert audit.paid_orders == ORDERS
    assert audit.captured_cents == ORDERS * sale.price_cents
    print(
        f"\n{ORDERS} orders: bought and paid at the provider in {bought_s:.1f} s, all paid "
        f"after {elapsed:.1f} s; callbacks dropped {dropped}, found by active query "
        f"{recovered}; provider queries {stats.queries}"
    )
    await asyncio.sleep(0)
