"""The refund transitions reach PostgreSQL like every other order event, and audit clean.

A paid order cancelled before delivery becomes refund_pending (it keeps its
serial, counted in ``sold``), then refunded (serial back to the pool) when an
operator approves, or paid again when one rejects.
"""

from __future__ import annotations

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.audit import money_audit
from flashsale.payments.models import PaymentCreate
from flashsale.payments.passwords import PasswordPolicy
from flashsale.payments.refunds import Refunds
from flashsale.payments.service import PaymentService
from flashsale.store.audit import audit_sale
from flashsale.store.persist import Persister

from ..engine.helpers import assert_invariants
from .store_helpers import make_sale

LIGHT_PASSWORDS = PasswordPolicy(time_cost=1, memory_cost_kib=1024, parallelism=1)


async def _statuses(pool: asyncpg.Pool, sale_id: str) -> dict[str, str]:
    rows = await pool.fetch("SELECT order_id, status FROM orders WHERE sale_id = $1", sale_id)
    return {r["order_id"]: r["status"] for r in rows}


async def _clean_audit(engine: Engine, pool: asyncpg.Pool, namespace: str, sale_id: str) -> None:
    await Persister(engine.redis, pool, namespace=namespace).drain(timeout_s=30)
    report = await audit_sale(engine.redis, pool, namespace, sale_id)
    assert report.ok, report.violations
    assert report.drained and report.lag == 0 and report.stream.dead_letters == 0
    await assert_invariants(engine, sale_id)


async def test_cancel_paid_order_refund_approved_and_rejected_are_persisted(
    engine: Engine, pg_pool: asyncpg.Pool, namespace: str
) -> None:
    sale_id = f"refunds-{namespace}"
    await make_sale(engine, sale_id, size=3)
    service = PaymentService(
        pg_pool, engine, {}, password_policy=LIGHT_PASSWORDS, bills=BillSettlement
    )
    refunds = Refunds(service)
    orders = {}
    for user in ("keeper", "quitter"):
        buyer = f"{user}-{namespace}"
        orders[user] = (await engine.purchase(sale_id, buyer)).order
        await service.set_password(buyer, "123456", None)
        await service.credit_wallet(buyer, 990, "test", actor="ops")
        pay = PaymentCreate(method="balance", payment_password="123456")
        assert (await service.start_payment(orders[user].order_id, buyer, pay)).status == (
            "succeeded"
        )
    await _clean_audit(engine, pg_pool, namespace, sale_id)

    # paid -> refund_pending: the serial stays sold until an operator decides
    for user, order in orders.items():
        pending = await service.cancel_order(order.order_id, f"{user}-{namespace}")
        assert pending.status == "refund_pending"
    sale = await engine.get_sale(sale_id)
    assert (sale.sold, sale.reserved, sale.available) == (2, 0, 1)
    await _clean_audit(engine, pg_pool, namespace, sale_id)
    assert set((await _statuses(pg_pool, sale_id)).values()) == {"refund_pending"}

    asked = {r.order_id: r for r in await refunds.list("pending")}
    approved = await refunds.approve(asked[orders["quitter"].order_id].refund_id, "ops")
    rejected = await refunds.reject(asked[orders["keeper"].order_id].refund_id, "ops")
    assert (approved.status, rejected.status) == ("refunded", "rejected")
    sale = await engine.get_sale(sale_id)
    assert (sale.sold, sale.available) == (1, 2)
    await _clean_audit(engine, pg_pool, namespace, sale_id)
    statuses = await _statuses(pg_pool, sale_id)
    assert statuses == {orders["quitter"].order_id: "refunded", orders["keeper"].order_id: "paid"}
    kinds = await pg_pool.fetch(
        "SELECT e.type FROM order_events e JOIN orders o USING (order_id)"
        " WHERE o.sale_id = $1 ORDER BY e.order_id, e.version",
        sale_id,
    )
    assert {r["type"] for r in kinds} == {
        "purchased",
        "paid",
        "refund_requested",
        "refunded",
        "refund_rejected",
    }

    # the refunded serial is sold again first; PostgreSQL takes the new holder
    again = (await engine.purchase(sale_id, f"next-{namespace}")).order
    assert again.serial == orders["quitter"].serial
    await _clean_audit(engine, pg_pool, namespace, sale_id)
    money = await money_audit(pg_pool, sale_id, engine)
    assert money.ok, money.violations
