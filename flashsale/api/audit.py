"""``GET /v1/sales/{sale_id}/audit``: the store's audit joined with the money audit.

``flashsale.store.audit.audit_sale`` checks Redis against PostgreSQL (counters,
serials, limits, every acknowledged order persisted); ``money_audit`` checks the
payment ledger against the orders (paid orders = captured − refunds − retained,
one kept payment per paid order, wallets equal their ledgers). One report: ``ok``
is true exactly when the violations of both are none.
"""

from __future__ import annotations

import time

from flashsale.api.problems import AuditUnavailable
from flashsale.api.schemas import AuditReport
from flashsale.api.state import AppState
from flashsale.engine.errors import SaleNotFound
from flashsale.payments.audit import money_audit
from flashsale.store.audit import Violation, audit_sale

MONEY_CODE = "money_mismatch"


async def run_audit(state: AppState, sale_id: str, *, deep: bool = True) -> AuditReport:
    pool = state.pg_pool
    if pool is None:
        await state.engine.get_sale(sale_id)  # 404 sale_not_found first
        raise AuditUnavailable("the audit needs PostgreSQL (FLASHSALE_DATABASE_URL)")
    engine = state.engine
    started = time.monotonic()
    store = await audit_sale(engine.redis, pool, engine.namespace, sale_id, deep=deep)
    if any(v.code == "sale_not_found" for v in store.violations):
        raise SaleNotFound()  # in neither Redis nor PostgreSQL
    money = await money_audit(pool, sale_id, engine)
    violations = store.violations + [
        Violation(code=MONEY_CODE, detail=detail) for detail in money.violations
    ]
    return AuditReport(
        ok=not violations,
        violations=violations,
        persisted=store.persisted,
        lag=store.lag,
        sale_id=sale_id,
        drained=store.drained,
        deep=store.deep,
        checked_orders=store.checked_orders,
        redis=store.redis,
        postgres=store.postgres,
        stream=store.stream,
        money=money,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
