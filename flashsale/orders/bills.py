"""Bills: the parent bill pays every order of a checkout, a merchant bill its merchant's.

Paying a bill is one debit (or one provider trade) for its ``to_pay_cents``;
every order it covers then gets a payment of its own for its share, settled
against the order by the payment flow's ``Settlement`` as a single payment is
(an order that can no longer take it has its share credited back). The bills
of a checkout are locked together while one is paid, so the parent and a
merchant bill paid at once take turns: once a merchant bill is paid the parent
is ``closed``; once the parent is paid its merchant bills read ``paid``.
"""

from __future__ import annotations

import asyncpg
from msgspec import Struct

from flashsale.orders.bill_settlement import claim, insert_shares
from flashsale.orders.errors import BalanceRequired, BillNotFound, BillNotPayable
from flashsale.orders.models import Bill, row_to_bill
from flashsale.orders.queries import q
from flashsale.payments import errors as payment_errors
from flashsale.payments import wallet
from flashsale.payments.context import new_id
from flashsale.payments.failures import Failure, report
from flashsale.payments.models import PaymentCreate, PaymentMethod, PaymentStatus
from flashsale.payments.service import PaymentService


class BillPayment(Struct, kw_only=True):
    """A bill's payment: an order payment's fields plus ``bill_id`` and its orders."""

    payment_id: str
    bill_id: str
    order_ids: list[str]
    method: PaymentMethod
    status: PaymentStatus
    amount_cents: int
    currency: str
    provider_trade_no: str | None = None
    pay_url: str | None = None
    provider: str | None = None
    order_id: str | None = None
    """None: a bill's payment pays several orders (``order_ids``)."""


class Bills:
    def __init__(self, service: PaymentService) -> None:
        self.service = service

    @property
    def pool(self) -> asyncpg.Pool:
        return self.service.pool

    async def get(self, bill_id: str, user_id: str | None) -> Bill:
        """The bill, when it exists and (``user_id`` given) is this buyer's."""
        row = await self.pool.fetchrow(q("bill_by_id"), bill_id)
        if row is None or (user_id is not None and row["user_id"] != user_id):
            raise BillNotFound()
        return row_to_bill(row)

    async def pay(self, bill_id: str, user_id: str, body: PaymentCreate) -> BillPayment:
        bill = await self.get(bill_id, user_id)
        if bill.status != "open":
            raise BillNotPayable(f"the bill is {bill.status}", bill_status=bill.status)
        if bill.to_pay_cents == 0 and body.method != "balance":
            raise BalanceRequired("coins cover the bill: pay with balance and the password")
        if body.method == "provider" and body.provider not in self.service.providers:
            raise payment_errors.UnknownProvider(f"no payment provider named {body.provider}")
        orders = await self.pool.fetch(q("bill_orders"), bill_id)
        for order in orders:
            try:
                await self.service.attempts.payable_order(order["order_id"], user_id)
            except payment_errors.OrderNotPayable as exc:
                raise BillNotPayable(
                    f"order {order['order_id']}: {exc.detail}", order_id=order["order_id"]
                ) from exc
        if body.method == "balance":
            assert body.payment_password is not None
            return await self._by_balance(bill, orders, user_id, body.payment_password)
        assert body.provider is not None
        return await self._by_provider(bill, user_id, body.provider)

    async def _by_balance(
        self, bill: Bill, orders: list[asyncpg.Record], user_id: str, password: str
    ) -> BillPayment:
        service = self.service
        # the payment password is asked even when coins cover it all (article 001)
        await service.passwords.verify(user_id, password)
        payment_id = new_id("pay")
        debit = {
            "payment_id": payment_id,
            "user_id": user_id,
            "method": "balance",
            "provider": None,
            "currency": bill.currency,
        }
        async with self.pool.acquire() as conn, conn.transaction():
            await claim(conn, bill.bill_id, payment_id)
            if bill.to_pay_cents > 0:
                try:
                    await wallet.move(
                        conn,
                        user_id,
                        bill.currency,
                        -bill.to_pay_cents,
                        "debit",
                        payment_id=payment_id,
                        reason=f"bill {bill.bill_id}",
                        actor=user_id,
                    )
                except payment_errors.InsufficientBalance:
                    report(Failure.INSUFFICIENT_BALANCE, order_id=bill.bill_id, user_id=user_id)
                    raise payment_errors.InsufficientBalance(
                        "the balance is below the bill: pay through a provider"
                    ) from None
            shares = await insert_shares(conn, service.ctx, bill.bill_id, debit)
        for share in shares:  # each order takes its share, or has it credited back
            await service.settlement.settle(share)
        return BillPayment(
            payment_id=payment_id,
            bill_id=bill.bill_id,
            order_ids=bill.order_ids,
            method="balance",
            status="succeeded",
            amount_cents=bill.to_pay_cents,
            currency=bill.currency,
        )

    async def _by_provider(self, bill: Bill, user_id: str, name: str) -> BillPayment:
        """One trade for the bill (its ``order_id`` is the bill's id); once the provider says
        it succeeded, the payment flow settles it as a bill (``bill_settlement``)."""
        payment = await self.service.attempts.open_trade(
            name, bill.bill_id, bill.checkout_id, user_id, bill.to_pay_cents, bill.currency
        )
        return BillPayment(
            payment_id=payment.payment_id,
            bill_id=bill.bill_id,
            order_ids=bill.order_ids,
            method="provider",
            status=payment.status,
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            provider_trade_no=payment.provider_trade_no,
            pay_url=payment.pay_url,
            provider=name,
        )
