"""Expiry and cancellation of orders that may have payments in flight.

Before an order with an attempt in flight expires or is cancelled, its trades
are queried and closed at the provider, so a paid order is never expired. A
paid order cancelled before delivery becomes ``refund_pending`` with a refund
request for operator review (``refunds``). When a sale's price changes or it
is delisted, its pending orders can no longer be paid and are cancelled.

A paid order's cancellation is two steps in two stores (the Redis transition,
then the refund row in PostgreSQL). The intent is written on the payment row
first (``cancel_requested_at``), so a crash anywhere in between leaves work the
timers find and finish (``finish_stalled``), and a retried cancel of an order
left ``refund_pending`` completes it and answers as the first would have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from flashsale.crashpoints import crash_point
from flashsale.engine import errors as engine_errors
from flashsale.engine.models import Order
from flashsale.errors import FlashsaleError
from flashsale.payments import errors
from flashsale.payments.context import PaymentContext
from flashsale.payments.failures import Failure
from flashsale.payments.queries import q
from flashsale.payments.release import note_release, order_released
from flashsale.payments.settlement import Settlement, open_refund

INVALIDATION_PAGE = 1000


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
            if order is not None and order.status in ("expired", "cancelled"):
                await order_released(self.ctx.pool, order_id, order.status)  # a repeat: no-op
            return "not_pending"
        if not await self._resolve_in_flight(order_id):
            deadline_ms = int(order.expires_at.timestamp() * 1000)
            if engine.clock() < deadline_ms + int(self.ctx.settings.expiry_grace_s * 1000):
                return "deferred"
            await self.ctx.alert(Failure.EXPIRED_WITHOUT_ANSWER, order_id=order_id)
        await note_release(self.ctx.pool, order_id)  # a crash after the expiry: the timers
        try:
            await engine.expire(order_id)
        except engine_errors.OrderNotPending as exc:
            return f"not_pending:{exc.extra.get('status')}"
        except engine_errors.NotDue:
            return "not_due"
        await order_released(self.ctx.pool, order_id, "expired")
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
            await note_release(self.ctx.pool, order_id)
            try:
                cancelled = await self.ctx.engine.cancel(order_id, user_id=user_id, reason=reason)
                await order_released(self.ctx.pool, order_id, "cancelled")
                return cancelled
            except engine_errors.OrderNotPending as exc:
                order = exc.extra["order"]  # paid meanwhile: handled below
        if order.status == "paid":
            return await self._cancel_paid(order, user_id, reason)
        if order.status == "refund_pending":
            # a retry after a crash between the two steps: the refund row too, then the answer
            kept = await self._kept_payment(order)
            if kept is not None:
                await self._open_cancel_refund(
                    kept, kept["cancel_reason"] or order.reason or reason
                )
            return order
        if order.status == "cancelled":
            return order
        refused = engine_errors.cancel_refused(order.status)
        if refused is not None:  # delivery started: after-sales instead
            raise refused
        raise errors.OrderNotCancellable(f"the order is {order.status}", status=order.status)

    async def _kept_payment(self, order: Order) -> Mapping[str, Any] | None:
        row: Mapping[str, Any] | None = await self.ctx.pool.fetchrow(
            q("payment_of_order"), order.payment_id, order.order_id
        )
        return row if row is not None and row["settlement"] == "kept" else None

    async def _cancel_paid(self, order: Order, user_id: str | None, reason: str) -> Order:
        kept = await self._kept_payment(order)
        if kept is None:
            # The confirmation is still being recorded; the buyer may retry in a moment.
            raise errors.OrderNotCancellable("the payment is still being recorded; retry shortly")
        # One refund per payment: after an operator refused it, a new request could only
        # leave the order refund_pending with nothing to review. Refused up front instead.
        if await self.ctx.pool.fetchval(q("refund_status_of_payment"), kept["payment_id"]):
            raise errors.OrderNotCancellable(
                "an operator already decided this order's refund: ask support"
            )
        await self.ctx.pool.execute(q("note_cancel_intent"), kept["payment_id"], reason)
        crash_point("cancel.before_redis")
        try:
            moved, _ = await self.ctx.engine.request_refund(
                order.order_id, user_id=user_id, reason=reason
            )
        except engine_errors.OrderNotPending as exc:
            await self.ctx.pool.execute(q("clear_cancel_intent"), kept["payment_id"])
            status = exc.extra.get("status")
            raise errors.OrderNotCancellable(f"the order is {status}", status=status) from exc
        crash_point("cancel.after_redis")
        await self._open_cancel_refund(kept, reason)
        return moved

    async def _open_cancel_refund(self, kept: Mapping[str, Any], reason: str) -> None:
        """The refund row for review (once per payment) and the intent cleared, together."""
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            await open_refund(conn, kept, "order_cancelled", reason, cancels_order=True)
            await conn.execute(q("clear_cancel_intent"), kept["payment_id"])

    async def finish_stalled(self, limit: int, older_than_s: float) -> int:
        """The timers' repair: finish cancellations a crash cut in two; how many were seen.

        Order still ``paid`` (crashed before Redis): the cancellation the buyer asked
        for goes through. ``refund_pending`` (crashed after): its refund row. Anything
        else (delivered, refunded meanwhile): nothing left to do, the intent is dropped.
        """
        rows = await self.ctx.pool.fetch(q("claim_stalled_cancels"), limit, older_than_s)
        for kept in rows:
            reason = kept["cancel_reason"] or "cancelled"
            order = await self.ctx.engine.get_order(kept["order_id"])
            if order is not None and order.status == "paid":
                try:
                    order, _ = await self.ctx.engine.request_refund(
                        order.order_id, user_id=None, reason=reason
                    )
                except engine_errors.OrderNotPending as exc:
                    order = exc.extra.get("order")
            if order is not None and order.status == "refund_pending":
                await self._open_cancel_refund(kept, reason)
                await self.ctx.alert(
                    Failure.CANCEL_REPAIRED,
                    order_id=kept["order_id"],
                    payment_id=kept["payment_id"],
                )
            else:
                await self.ctx.pool.execute(q("clear_cancel_intent"), kept["payment_id"])
        return len(rows)

    async def invalidate_pending_orders(
        self, sale_id: str, reason: str, *, page: int = INVALIDATION_PAGE
    ) -> AsyncIterator[list[str]]:
        """Seed 001: the sale's price changed or it was delisted; its pending orders can no
        longer be paid. Each is cancelled with ``reason`` (its trades closed first).

        Yields the ids cancelled, page by page, until none is left (a cancelled order
        leaves the expiry schedule, so the next page starts where this one ended): memory
        and an answer stay bounded by the page whatever the sale's size. One that cannot
        be cancelled now is stepped over, never a reason to stop early."""
        skipped: set[str] = set()
        while True:
            ids = await self.ctx.engine.pending_order_ids(sale_id, limit=len(skipped) + page)
            todo = [order_id for order_id in ids if order_id not in skipped]
            if not todo:
                return
            cancelled: list[str] = []
            for order_id in todo:
                try:
                    order = await self.cancel_order(order_id, None, reason=reason, force=True)
                except FlashsaleError:
                    skipped.add(order_id)
                    continue
                if order.status == "cancelled":
                    cancelled.append(order_id)
                else:
                    skipped.add(order_id)  # paid meanwhile, and the like
            yield cancelled
