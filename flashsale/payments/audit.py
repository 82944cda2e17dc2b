"""Money audit of a sale: paid orders = captured payments - refunds.

Terms (all in cents, one sale):

- ``captured``: money providers or wallets took, i.e. payments in status
  ``succeeded`` (balance debits credited back in the same flow are ``reversed``
  and count on neither side);
- ``refunds``: refund requests not rejected (pending, approved or refunded):
  money that is, or will be, given back;
- ``retained``: refunds an operator rejected for a payment that is not its
  order's (a duplicate or late payment kept on purpose);
- ``paid_orders``: price of the orders in status paid or delivered, less the coins an
  order of a checkout carries (flashsale/orders).

The identity ``paid_orders == captured - refunds - retained`` must hold, and
order by order: a paid (or delivered, refund_pending, refunded) order names a
kept payment of its own for exactly its price; an expired, cancelled or
pending order keeps no payment; every payment settled as ``refund`` has a
refund row; no succeeded payment stays unsettled for long. Order states come
from Redis when an engine is given (the authority), else from PostgreSQL's
``orders`` table when it has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from flashsale.engine import statuses
from flashsale.engine.engine import Engine
from flashsale.orders import coins as coin_ledger
from flashsale.orders.coins import coins_given_back
from flashsale.payments import wallet
from flashsale.payments.models import MoneyAudit
from flashsale.payments.queries import q

UNSETTLED_GRACE_S = 60


async def _orders_from_redis(engine: Engine, sale_id: str) -> dict[str, dict[str, Any]]:
    return {
        o.order_id: {
            "status": o.status,
            "price_cents": o.price_cents,
            "payment_id": o.payment_id,
            "updated_at": o.updated_at,
        }
        for o in await engine.orders_of_sale(sale_id)
    }


async def _orders_from_pg(pool: asyncpg.Pool, sale_id: str) -> dict[str, dict[str, Any]] | None:
    try:
        rows = await pool.fetch(q("audit_orders"), sale_id)
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        return None
    return {r["order_id"]: dict(r) for r in rows}


async def money_audit(pool: asyncpg.Pool, sale_id: str, engine: Engine | None = None) -> MoneyAudit:
    violations: list[str] = []
    payments = await pool.fetch(q("audit_payments"), sale_id, UNSETTLED_GRACE_S)
    refunds = await pool.fetch(q("audit_refunds"), sale_id)
    # an order of a checkout is paid its price less its coins (flashsale/orders)
    coin_rows = await pool.fetch(q("audit_coins"), sale_id)
    coins = {r["order_id"]: int(r["coins_cents"]) for r in coin_rows}
    refund_by_payment = {r["payment_id"]: r for r in refunds}
    by_id = {p["payment_id"]: p for p in payments}

    captured = sum(int(p["captured_cents"]) for p in payments if p["status"] == "succeeded")
    refunds_cents = sum(int(r["amount_cents"]) for r in refunds if r["status"] != "rejected")
    retained = sum(
        int(r["amount_cents"])
        for r in refunds
        if r["status"] == "rejected" and not r["cancels_order"]
    )
    unsettled = 0
    kept_by_order: dict[str, list[Mapping[str, Any]]] = {}
    for p in payments:
        if p["status"] == "succeeded" and p["settlement"] is None:
            unsettled += 1
            if p["overdue"]:
                violations.append(f"payment {p['payment_id']} succeeded but is not settled")
        if p["settlement"] == "kept":
            kept_by_order.setdefault(p["order_id"], []).append(p)
        if p["settlement"] == "refund" and p["payment_id"] not in refund_by_payment:
            violations.append(f"payment {p['payment_id']} owes a refund but has no refund row")
    for order_id, kept in kept_by_order.items():
        if len(kept) > 1:
            violations.append(f"order {order_id} keeps {len(kept)} payments")

    orders = await _orders_from_redis(engine, sale_id) if engine else None
    if orders is None:
        orders = await _orders_from_pg(pool, sale_id)
    paid_orders_cents = 0
    paid_orders = 0
    if orders is not None:
        for order_id, order in orders.items():
            status = order["status"]
            kept = kept_by_order.get(order_id, [])
            if status in statuses.PAID:
                paid_orders += 1
                paid_orders_cents += int(order["price_cents"]) - coins.get(order_id, 0)
            if status in statuses.PAYMENT_KEPT:
                payment = by_id.get(order["payment_id"] or "")
                if payment is None or payment["order_id"] != order_id:
                    violations.append(f"order {order_id} is {status} without a payment of its own")
                elif payment["settlement"] != "kept":
                    violations.append(
                        f"order {order_id} is {status} but its payment "
                        f"{payment['payment_id']} is not kept"
                    )
                elif int(payment["captured_cents"]) != int(order["price_cents"]) - coins.get(
                    order_id, 0
                ):
                    violations.append(f"order {order_id}: captured amount differs from the price")
                if status in ("refund_pending", "refunded"):
                    refund = refund_by_payment.get(order["payment_id"] or "")
                    if refund is None or not refund["cancels_order"]:
                        violations.append(f"order {order_id} is {status} without a refund request")
            elif kept:
                violations.append(
                    f"order {order_id} is {status} yet keeps payment {kept[0]['payment_id']}"
                )
        for order_id in kept_by_order:
            if order_id not in orders:
                violations.append(f"payment kept for unknown order {order_id}")
        violations.extend(coins_given_back(coin_rows, orders))
        if paid_orders_cents != captured - refunds_cents - retained:
            violations.append(
                f"paid orders {paid_orders_cents} != captured {captured} - refunds "
                f"{refunds_cents} - retained {retained}"
            )
    else:
        violations.append("no order states to audit against (no engine, no orders table)")
    violations.extend(await wallet.audit(pool))
    violations.extend(await coin_ledger.audit(pool))
    return MoneyAudit(
        sale_id=sale_id,
        ok=not violations,
        violations=violations,
        captured_cents=captured,
        refunds_cents=refunds_cents,
        retained_cents=retained,
        paid_orders_cents=paid_orders_cents,
        paid_orders=paid_orders,
        payments=len(payments),
        refunds_pending=sum(r["status"] == "pending" for r in refunds),
        unsettled=unsettled,
    )
