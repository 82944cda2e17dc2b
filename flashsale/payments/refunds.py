"""Refund review: an operator approves or rejects each refund request, once.

A decision is one conditional UPDATE (``status = 'pending'``) whose returned
row is checked: exactly one of two concurrent decisions wins; the loser reads
the refund again and answers from what won (the same decision: 200 unchanged;
the other: ``refund_already_decided``). Only the winner of an approval
executes it, and execution itself is idempotent on the refund id: it is the
provider's ``refund_no`` (the provider refunds once per refund_no) and the
wallet ledger's unique ``refund_id`` (credited once). Execution that cannot
reach the provider stays ``approved`` and the timers retry it with back-off.

For a paid order cancelled before delivery (``cancels_order``), the order's
Redis state follows the decision: approved and executed -> refunded (serial
back to the pool), rejected -> paid again. For a delivered order whose
after-sales ticket was approved (reason ``after_sales``): executed ->
refunded with its serial still sold (the token stays with the buyer); only
the ticket decides such a refund (``refund_decided_by_ticket`` here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import asyncpg

from flashsale.engine import errors as engine_errors
from flashsale.errors import FlashsaleError
from flashsale.payments import errors, wallet
from flashsale.payments.failures import Failure
from flashsale.payments.models import Refund, RefundStatus, row_to
from flashsale.payments.provider import ProviderProtocolError, ProviderRejected, ProviderUnavailable
from flashsale.payments.queries import q
from flashsale.payments.release import order_released
from flashsale.payments.service import PaymentService

AFTER_SALES = "after_sales"
"""The reason of a refund an approved after-sales ticket opened (a delivered order)."""

RefundOutcome = Literal["pending", "rejected", "executed", "queued", "refused"]


def _refund(row: Mapping[str, Any]) -> Refund:
    refund: Refund = row_to(Refund, row)
    return refund


def outcome(refund: Refund) -> RefundOutcome:
    """Where a refund's money is: ``executed`` (sent back), ``queued`` (approved; the
    timers send it, e.g. once the provider answers again), ``refused`` (the provider
    said no: an operator looks at it), or not decided for it (pending, rejected)."""
    if refund.status in ("pending", "rejected"):
        return refund.status
    if refund.status == "refunded":
        return "executed"
    return "queued" if refund.next_attempt_at is not None else "refused"


class Refunds:
    def __init__(self, service: PaymentService) -> None:
        self.service = service
        self.pool: asyncpg.Pool = service.pool

    async def list(self, status: RefundStatus | None = None, limit: int = 500) -> list[Refund]:
        rows = await self.pool.fetch(q("list_refunds"), status, limit)
        return [_refund(r) for r in rows]

    async def get(self, refund_id: str) -> Refund:
        row = await self.pool.fetchrow(q("refund_by_id"), refund_id)
        if row is None:
            raise errors.RefundNotFound()
        return _refund(row)

    async def provider_of(self, refund_id: str) -> str | None:
        """The provider the refund's money goes back through; None for the wallet."""
        await self.get(refund_id)  # refund_not_found first
        provider: str | None = await self.pool.fetchval(q("refund_provider"), refund_id)
        return provider

    async def _decide(
        self, refund_id: str, decision: str, actor: str, note: str | None
    ) -> tuple[asyncpg.Record, bool]:
        row = await self.pool.fetchrow(
            q("decide_refund"),
            refund_id,
            decision,
            actor,
            note,
            self.service.settings.lease_s,
        )
        if row is not None:
            return row, True
        current = await self.pool.fetchrow(q("refund_by_id"), refund_id)
        if current is None:
            raise errors.RefundNotFound()
        same = current["status"] in (
            ("approved", "refunded") if decision == "approved" else ("rejected",)
        )
        if not same:
            raise errors.RefundAlreadyDecided(
                f"the refund was already {current['status']}", status=current["status"]
            )
        return current, False

    async def _not_a_tickets(self, refund_id: str) -> None:
        """Refuse a review-queue decision on a refund an approved after-sales ticket opened:
        rejecting it would leave the ticket approved with no money moved (a crash between
        the ticket's approval and its refund's), approving it would decide twice."""
        refund = await self.get(refund_id)
        if refund.reason == AFTER_SALES:
            raise errors.RefundDecidedByTicket(
                f"after-sales ticket {refund.detail} decides this refund: approve the ticket "
                "again to finish it",
                ticket_id=refund.detail,
            )

    async def approve(
        self, refund_id: str, actor: str, note: str | None = None, *, by_ticket: bool = False
    ) -> Refund:
        """``by_ticket``: the after-sales ticket's own approval (the only way for its refund)."""
        if not by_ticket:
            await self._not_a_tickets(refund_id)
        _, won = await self._decide(refund_id, "approved", actor, note)
        if won:
            await self.execute(refund_id)
        return await self.get(refund_id)

    async def reject(self, refund_id: str, actor: str, note: str | None = None) -> Refund:
        await self._not_a_tickets(refund_id)
        row, won = await self._decide(refund_id, "rejected", actor, note)
        if won and row["cancels_order"]:
            await self._settle_order(row)
        return await self.get(refund_id)

    async def execute(self, refund_id: str) -> str:
        """Send an approved refund's money back (idempotent); returns the refund's status."""
        row = await self.pool.fetchrow(q("refund_to_execute"), refund_id)
        if row is None or row["status"] != "approved":
            return "missing" if row is None else str(row["status"])
        amount = int(row["amount_cents"])
        if row["method"] == "balance":
            if amount > 0:
                async with self.pool.acquire() as conn:
                    try:
                        async with conn.transaction():
                            await wallet.move(
                                conn,
                                row["user_id"],
                                row["currency"],
                                amount,
                                "refund",
                                payment_id=row["payment_id"],
                                refund_id=refund_id,
                                reason=f"refund {refund_id}: {row['reason']}",
                                actor=row["decided_by"] or "system",
                            )
                    except asyncpg.UniqueViolationError:
                        pass  # credited before: exactly once
        elif amount > 0:
            provider = self.service.providers.get(row["provider"])
            if provider is None or row["provider_trade_no"] is None:
                await self._retry_later(row, "no provider or trade for this payment")
                return "approved"
            try:
                await provider.refund(row["provider_trade_no"], refund_id, amount)
            except ProviderUnavailable as exc:
                await self.service.alert(
                    Failure.PROVIDER_UNREACHABLE, op="refund", refund_id=refund_id, error=str(exc)
                )
                await self._retry_later(row, str(exc))
                return "approved"
            except (ProviderRejected, ProviderProtocolError) as exc:
                await self.service.alert(
                    Failure.REFUND_FAILED,
                    refund_id=refund_id,
                    payment_id=row["payment_id"],
                    order_id=row["order_id"],
                    error=str(exc),
                )
                await self.pool.execute(q("refund_refused"), refund_id, str(exc))
                return "approved"
        done = await self.pool.fetchrow(q("mark_refunded"), refund_id)
        if done is not None and done["cancels_order"]:
            await self._settle_order(done)
        return "refunded"

    async def _retry_later(self, row: Mapping[str, Any], error: str) -> None:
        delay = self.service.ctx.backoff_s(int(row["attempts"]) + 1)
        await self.pool.execute(q("retry_refund_later"), row["refund_id"], error, delay)

    async def _settle_order(self, row: Mapping[str, Any]) -> None:
        """Move the order as the decision says (refunded, or paid again)."""
        engine = self.service.engine
        reason = f"refund {row['refund_id']} {row['status']}"
        after_sales = row["reason"] == AFTER_SALES  # a delivered order: its token stays
        try:
            if row["status"] == "refunded":
                if after_sales:
                    await engine.refund_delivered(row["order_id"], reason=reason)
                else:
                    await engine.refund(row["order_id"], reason=reason)
                await order_released(self.pool, row["order_id"], "refunded")
            elif not after_sales:
                await engine.reject_refund(row["order_id"], reason=reason)
        except engine_errors.OrderNotPending:
            pass  # moved already (a replay): nothing left to do
        except FlashsaleError as exc:
            await self.service.alert(
                Failure.CONFIRM_DEFERRED, refund_id=row["refund_id"], error=str(exc)
            )
            return  # the timers try again
        await self.pool.execute(q("mark_order_settled"), row["refund_id"])

    # -- timers --------------------------------------------------------------------

    async def retry_due(self, limit: int = 100) -> int:
        """Execute approved refunds whose last try failed, and finish order transitions."""
        lease = self.service.settings.lease_s
        due = await self.pool.fetch(q("claim_due_refunds"), limit, lease)
        for row in due:
            await self.execute(row["refund_id"])
        unsettled = await self.pool.fetch(q("refunds_with_unsettled_order"), limit)
        for row in unsettled:
            await self._settle_order(row)
        return len(due) + len(unsettled)
