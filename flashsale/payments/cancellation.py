"""Expiry and cancellation of orders that may have payments in flight.

Before an order with an attempt in flight expires or is cancelled, its trades
are queried and closed at the provider, so a paid order is never expired. A
paid order cancelled before delivery becomes ``refund_pending`` with a refund
request for operator review (``refunds``). When a sale's price changes or it
is delisted, its pending orders can no longer be paid and are cancelled.
"""

from __future__ import annotations

from flashsale.engine import errors as engine_errors
from flashsale.engine.models import Order
from flashsale.errors import FlashsaleError
from flashsale.payments import errors
from flashsale.payments.context import PaymentContext
from flashsale.payments.failures import Failure
from flashsale.payments.queries import q
from flashsale.payments.settlement import Settlement, open_refund


class Cancellation:
    def __init__(self, ctx: PaymentContext, settlement: Settlement) -> None:
        self.ctx = ctx
        self.settlement = settlement

    async def _resolve_in_flight(self, order_id: str) -> bool:
        """Query and close every open trade of an order; False when one stayed unknown."""
        rows = await self.ctx.pool.fetch(q("open_attempts_of_order"), order_id)
        resolved = True
        for row in rows:
            if await self.settlement.close_attempt(row) == "unknown":
                resolved = False
        return resolved

    async def expire_order(self, order_id: str) -> str:
        """Expire a due order, asking the provider first: a paid order is never expired."""
        engine = self.ctx.engine
        order = await engine.get_order(order_id)
        if order is None or order.status != "pending_payment":
            try:
                await engine.expire(order_id)  # unschedules it
            except FlashsaleError:
                pass
            return "not_pending"
        if not await self._resolve_in_flight(order_id):
            deadline_ms = int(order.expires_at.timestamp() * 1000)
            if engine.clock() < deadline_ms + int(self.ctx.settings.expiry_grace_s * 1000):
                return "deferred"
            await self.ctx.alert(Failure.EXPIRED_WITHOUT_ANSWER, order_id=order_id)
        try:
            await engine.expire(order_id)
        except engine_errors.OrderNotPending as exc:
            return f"not_pending:{exc.extra.get('status')}"
        except engine_errors.NotDue:
            return "not_due"
        return "expired"

    async def cancel_order(
        self,
        order_id: str,
        user_id: str | None,
        *,
        reason: str = "cancelled by buyer",
        force: bool = False,
    ) -> Order:
        """Cancel an order: pending -> cancelled (trades closed); paid -> refund_pending.

        ``force`` cancels even when the provider cannot be reached (ops, price change,
        delisting); a payment that still arrives becomes a paid_after_cancel refund.
        """
        order = await self.ctx.owned_order(order_id, user_id)
        if order.status == "pending_payment":
            if not await self._resolve_in_flight(order_id) and not force:
                raise errors.ProviderUnavailable(
                    "the payment provider did not answer; try cancelling again shortly"
                )
            try:
                return await self.ctx.engine.cancel(order_id, user_id=user_id, reason=reason)
            except engine_errors.OrderNotPending as exc:
                order = exc.extra["order"]  # paid meanwhile: handled below
        if order.status == "paid":
            return await self._cancel_paid(order, user_id, reason)
        if order.status in ("cancelled", "refund_pending"):
            return order
        refused = engine_errors.cancel_refused(order.status)
        if refused is not None:  # delivery started: after-sales instead
            raise refused
        raise errors.OrderNotCancellable(f"the order is {order.status}", status=order.status)

    async def _cancel_paid(self, order: Order, user_id: str | None, reason: str) -> Order:
        kept = await self.ctx.pool.fetchrow(q("payment_of_order"), order.payment_id, order.order_id)
        if kept is None or kept["settlement"] != "kept":
            # The confirmation is still being recorded; the buyer may retry in a moment.
            raise errors.OrderNotCancellable("the payment is still being recorded; retry shortly")
        try:
            moved, _ = await self.ctx.engine.request_refund(
                order.order_id, user_id=user_id, reason=reason
            )
        except engine_errors.OrderNotPending as exc:
            status = exc.extra.get("status")
            raise errors.OrderNotCancellable(f"the order is {status}", status=status) from exc
        # After the Redis transition (a replay of it completes a crashed first try).
        async with self.ctx.pool.acquire() as conn:
            await open_refund(conn, kept, "order_cancelled", reason, cancels_order=True)
        return moved

    async def invalidate_pending_orders(self, sale_id: str, reason: str) -> list[str]:
        """Seed 001: the sale's price changed or it was delisted; its pending orders can no
        longer be paid. Each is cancelled with ``reason`` (its trades closed first)."""
        cancelled: list[str] = []
        for order_id in await self.ctx.engine.pending_order_ids(sale_id):
            try:
                order = await self.cancel_order(order_id, None, reason=reason, force=True)
            except FlashsaleError:
                continue
            if order.status == "cancelled":
                cancelled.append(order_id)
        return cancelled
