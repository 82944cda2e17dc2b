"""Settling a bill's payment: the bill is claimed, every order it covers gets its share.

One debit or one provider trade pays a bill. Once it succeeded, the checkout's
bills are locked together and the bill is marked paid (a merchant bill closes
the parent; the parent pays its merchant bills); each order then gets a payment
of its own for its share (``parent_payment_id`` names the bill's payment),
settled against the order by the payment flow as any payment is. A payment
for a bill that is no longer open is given back as a duplicate or late payment
would be. Every step is idempotent: a callback and a query racing, or the
timers' repair, settle a bill once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from flashsale.orders.errors import BillNotPayable
from flashsale.orders.queries import q
from flashsale.payments.context import PaymentContext, new_id
from flashsale.payments.failures import Failure
from flashsale.payments.queries import q as payment_q
from flashsale.payments.settlement import Outcome, Settlement


def pays_a_bill(order_ref: str) -> bool:
    """A payment's ``order_id`` names a bill (``bill_…``) rather than an order (``sale.hash``)."""
    return "." not in order_ref


async def claim(conn: asyncpg.Connection, bill_id: str, payment_id: str) -> Mapping[str, Any]:
    """Mark the bill paid by ``payment_id``, and its siblings as that makes them, inside the
    caller's transaction; BillNotPayable when it is not open (another payment won)."""
    state = await conn.fetchrow(q("bill_claim_state"), bill_id)
    if state is None:
        raise BillNotPayable("no such bill")
    await conn.fetch(q("lock_checkout_bills"), state["checkout_id"])
    if await conn.fetchval(q("mark_bill_paid"), bill_id, payment_id) is None:
        current = await conn.fetchval(q("bill_status"), bill_id)
        raise BillNotPayable(f"the bill is {current}", bill_status=current)
    if state["kind"] == "parent":
        await conn.execute(q("parent_paid_pays_merchant_bills"), state["checkout_id"], payment_id)
    else:
        await conn.execute(q("merchant_paid_closes_parent"), state["checkout_id"])
    return dict(state)


async def insert_shares(
    conn: asyncpg.Connection,
    ctx: PaymentContext,
    bill_id: str,
    payment: Mapping[str, Any],
) -> list[Mapping[str, Any]]:
    """One succeeded payment per order of the bill, for its share, under ``payment``."""
    shares: list[Mapping[str, Any]] = []
    for order in await conn.fetch(q("bill_orders"), bill_id):
        row = await conn.fetchrow(
            q("insert_bill_share"),
            new_id("pay"),
            order["order_id"],
            order["sale_id"],
            payment["user_id"],
            payment["method"],
            payment["provider"],
            int(order["to_pay_cents"]),
            payment["currency"],
            payment["payment_id"],
            ctx.settings.repair_after_s,
        )
        assert row is not None
        shares.append(row)
    return shares


class BillSettlement:
    """The part of ``Settlement`` for payments whose ``order_id`` is a bill's id."""

    def __init__(self, ctx: PaymentContext, settlement: Settlement) -> None:
        self.ctx = ctx
        self.settlement = settlement

    def pays_a_bill(self, order_ref: str) -> bool:
        return pays_a_bill(order_ref)

    async def settle(self, row: Mapping[str, Any]) -> Outcome:
        bill_id, payment_id = row["order_id"], row["payment_id"]
        try:
            async with self.ctx.pool.acquire() as conn, conn.transaction():
                await claim(conn, bill_id, payment_id)
                shares = await insert_shares(conn, self.ctx, bill_id, row)
                await conn.fetchval(payment_q("keep_payment"), payment_id)
        except BillNotPayable as exc:
            state = await self.ctx.pool.fetchrow(q("bill_claim_state"), bill_id)
            if state is not None and state["payment_id"] == payment_id:
                return "already"  # settled before (a callback and a query raced)
            status = state["status"] if state is not None else "missing"
            failure = Failure.DUPLICATE_PAYMENT if status == "paid" else Failure.PAID_AFTER_CANCEL
            return await self.settlement.give_back(row, failure, f"bill {bill_id}: {exc.detail}")
        for share in shares:
            await self.settlement.settle(share)
        await self.settlement.close_siblings(row)
        return "kept"

    async def payable(self, row: Mapping[str, Any]) -> bool:
        """The bill a pending trade pays is still open (else its trade is closed)."""
        status = await self.ctx.pool.fetchval(q("bill_status"), row["order_id"])
        return bool(status == "open")
