"""Starting a payment: a provider attempt (a trade the buyer pays at its pay_url) or
a balance debit from the buyer's wallet, settled at once.

An order is payable while pending, before its deadline (less a margin against
clock skew) and at the price it was ordered at: an order whose item changed
while it waited is cancelled instead (docs/design.md#sources, article 001). A provider create whose
answer was lost leaves the attempt pending without a trade; the timers find
the trade again and close it (``settlement``).
"""

from __future__ import annotations

from flashsale.engine import errors as engine_errors
from flashsale.engine.models import Order
from flashsale.payments import errors, wallet
from flashsale.payments.cancellation import Cancellation
from flashsale.payments.context import PaymentContext, new_id, payment_from_row
from flashsale.payments.failures import Failure, report
from flashsale.payments.models import Payment, PaymentCreate
from flashsale.payments.passwords import Passwords
from flashsale.payments.provider import (
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from flashsale.payments.queries import q
from flashsale.payments.settlement import Settlement


class Attempts:
    def __init__(
        self,
        ctx: PaymentContext,
        passwords: Passwords,
        settlement: Settlement,
        cancellation: Cancellation,
    ) -> None:
        self.ctx = ctx
        self.passwords = passwords
        self.settlement = settlement
        self.cancellation = cancellation

    async def start_payment(self, order_id: str, user_id: str, body: PaymentCreate) -> Payment:
        if await self.ctx.pool.fetchval(q("order_in_checkout"), order_id):
            # its price is shared with coins and its merchant's bill: paid only through a bill
            raise errors.OrderNotPayable(
                "the order belongs to a checkout: pay its bill", status="in_checkout"
            )
        if body.method == "balance":
            assert body.payment_password is not None
            return await self._pay_by_balance(order_id, user_id, body.payment_password)
        assert body.provider is not None
        return await self._start_provider(order_id, user_id, body.provider)

    async def payable_order(self, order_id: str, user_id: str) -> Order:
        """The buyer's order when it can be paid now; its changed item cancels it (409)."""
        return await self._payable_order(order_id, user_id)

    async def _payable_order(self, order_id: str, user_id: str) -> Order:
        ctx = self.ctx
        order = await ctx.owned_order(order_id, user_id)
        if order.status != "pending_payment":
            report(Failure.ORDER_NOT_PAYABLE, order_id=order_id, status=order.status)
            raise errors.OrderNotPayable(f"the order is {order.status}", status=order.status)
        deadline_ms = int(order.expires_at.timestamp() * 1000)
        if ctx.engine.clock() >= deadline_ms - int(ctx.settings.start_margin_s * 1000):
            report(Failure.ORDER_NOT_PAYABLE, order_id=order_id, status="deadline")
            raise errors.OrderNotPayable("the payment deadline has passed", status=order.status)
        try:
            sale = await ctx.engine.get_sale(order.sale_id)
        except engine_errors.SaleNotFound:
            sale = None
        if sale is None or (sale.price_cents, sale.currency) != (order.price_cents, order.currency):
            # the item changed while the order waited: it cannot be paid any more
            # (article 001, docs/design.md#sources)
            reason = "sale delisted" if sale is None else "price changed"
            await self.cancellation.cancel_order(order_id, None, reason=reason, force=True)
            report(Failure.ORDER_NOT_PAYABLE, order_id=order_id, status=reason)
            raise errors.OrderNotPayable(f"the order was cancelled: {reason}", status="cancelled")
        return order

    async def _start_provider(self, order_id: str, user_id: str, name: str) -> Payment:
        if name not in self.ctx.providers:
            raise errors.UnknownProvider(f"no payment provider named {name}")
        order = await self._payable_order(order_id, user_id)
        if order.price_cents <= 0:
            raise errors.OrderNotPayable("nothing to pay: use the balance method", status="free")
        return await self.open_trade(
            name, order_id, order.sale_id, user_id, order.price_cents, order.currency
        )

    async def open_trade(
        self,
        name: str,
        order_id: str,
        sale_id: str,
        user_id: str,
        amount_cents: int,
        currency: str,
    ) -> Payment:
        """A pending attempt and its trade at provider ``name`` for ``order_id`` (an order,
        or a bill: flashsale/orders), the buyer pays it at its pay_url."""
        ctx = self.ctx
        provider = ctx.providers.get(name)
        if provider is None:
            raise errors.UnknownProvider(f"no payment provider named {name}")
        payment_id = new_id("pay")
        await ctx.pool.fetchrow(
            q("insert_provider_attempt"),
            payment_id,
            order_id,
            sale_id,
            user_id,
            name,
            amount_cents,
            currency,
            ctx.settings.callback_window_s,
        )
        try:
            trade = await provider.create_trade(
                payment_id,
                order_id,
                amount_cents,
                currency,
                ctx.settings.notify_url(name),
                subject=f"order {order_id}",
            )
        except ProviderUnavailable as exc:
            # Outcome unknown: the row stays pending without a trade; the timers find
            # the trade again by its out_trade_no and close it (the buyer never saw it).
            await ctx.alert(
                Failure.PROVIDER_UNREACHABLE, op="create", payment_id=payment_id, error=str(exc)
            )
            raise errors.ProviderUnavailable("the payment provider did not answer") from exc
        except (ProviderRejected, ProviderProtocolError) as exc:
            await ctx.pool.execute(q("fail_refused_attempt"), payment_id, str(exc))
            failure = (
                Failure.PROVIDER_REJECTED
                if isinstance(exc, ProviderRejected)
                else Failure.PROVIDER_PROTOCOL_ERROR
            )
            await ctx.alert(failure, op="create", payment_id=payment_id, error=str(exc))
            raise errors.ProviderUnavailable("the payment provider refused the trade") from exc
        row = await ctx.pool.fetchrow(
            q("set_attempt_trade"), payment_id, trade.trade_no, trade.pay_url
        )
        assert row is not None
        return payment_from_row(row)

    async def _pay_by_balance(self, order_id: str, user_id: str, password: str) -> Payment:
        order = await self._payable_order(order_id, user_id)
        # the payment password is asked even when the balance covers it all
        # (article 001, docs/design.md#sources)
        await self.passwords.verify(user_id, password)
        payment_id = new_id("pay")
        amount = order.price_cents
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                q("insert_balance_payment"),
                payment_id,
                order_id,
                order.sale_id,
                user_id,
                amount,
                order.currency,
                self.ctx.settings.repair_after_s,
            )
            if amount > 0:
                try:
                    await wallet.move(
                        conn,
                        user_id,
                        order.currency,
                        -amount,
                        "debit",
                        payment_id=payment_id,
                        reason=f"order {order_id}",
                        actor=user_id,
                    )
                except errors.InsufficientBalance:
                    report(Failure.INSUFFICIENT_BALANCE, order_id=order_id, user_id=user_id)
                    raise
        assert row is not None
        outcome = await self.settlement.settle(row)
        if outcome == "kept":
            return payment_from_row(row)
        if outcome == "deferred":
            raise errors.PaymentDeferred(
                "the order could not be confirmed yet; the payment will be confirmed or "
                "credited back shortly",
                payment_id=payment_id,
            )
        raise errors.OrderNotPayable(
            "the order could not take this payment; the balance was credited back",
            payment_id=payment_id,
        )
