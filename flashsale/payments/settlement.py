"""Settlement: a succeeded payment is kept for its order or its money goes back.

Money facts live in PostgreSQL, order states in Redis (the engine). Every
payment state change is a conditional UPDATE whose returned row is checked;
when it changed nothing, the row is read again and the answer comes from
whatever won (docs/design.md#sources, article 000). A succeeded payment is
then *settled* against its order with ``Engine.confirm_payment``:

- confirmed (or already confirmed by this same payment): ``settlement = kept``;
  a unique index allows one kept payment per order;
- the order was paid by another payment, expired or was cancelled: the money
  is not kept silently. Provider money becomes a refund for operator review
  (``settlement = refund`` plus a ``refunds`` row, in one transaction); a
  balance debit is credited back at once (``status = reversed``): it never
  left our ledger, so there is nothing for an operator to recover;
- Redis did not answer: the payment stays unsettled and the timers settle it
  later (the internal lost order of article 000, docs/design.md#sources).

What a provider says about a trade (a callback, an active query, the answer
to a close) is applied here too. Provider attempts are found again when their
callback is lost: an active query at the provider's usual callback time, then
back-off (see ``timers``); an attempt whose create answer was lost is found
again by its out_trade_no and closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import asyncpg

from flashsale.engine import errors as engine_errors
from flashsale.engine import statuses
from flashsale.engine.keys import sale_id_of_order
from flashsale.engine.models import Order
from flashsale.payments import wallet
from flashsale.payments.context import PaymentContext, new_id
from flashsale.payments.failures import Failure, report
from flashsale.payments.provider import (
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
    Trade,
)
from flashsale.payments.queries import q

Outcome = Literal[
    "kept", "refund", "reversed", "deferred", "already", "ignored", "closed", "mismatch", "unknown"
]
CloseOutcome = Literal["closed", "paid", "unknown"]


@dataclass(frozen=True, slots=True)
class TradeFacts:
    """What a provider says about a trade (from a callback or a query)."""

    status: str
    trade_no: str
    order_id: str
    amount_cents: int
    currency: str
    paid_at: datetime | None


class BillPayments(Protocol):
    """Settles payments whose ``order_id`` is a bill; implemented above, by flashsale/orders."""

    def pays_a_bill(self, order_ref: str) -> bool: ...
    async def settle(self, row: Mapping[str, Any]) -> Outcome: ...
    async def payable(self, row: Mapping[str, Any]) -> bool: ...


# Builds the settler of bill payments over the flow's context and settlement. Payments
# sit below orders, so whoever builds a ``PaymentService`` passes it (orders implements
# it: ``flashsale.orders.bill_settlement.BillSettlement``).
BillPaymentsFactory = Callable[[PaymentContext, "Settlement"], BillPayments]


class Settlement:
    def __init__(self, ctx: PaymentContext) -> None:
        self.ctx = ctx
        self.bills: BillPayments | None = None  # set by PaymentService

    def _for_bill(self, row: Mapping[str, Any]) -> BillPayments | None:
        bills = self.bills
        return bills if bills is not None and bills.pays_a_bill(row["order_id"]) else None

    async def settle(self, row: Mapping[str, Any]) -> Outcome:
        """Confirm a succeeded payment's order in Redis, or send the money back."""
        payment_id, order_id = row["payment_id"], row["order_id"]
        bills = self._for_bill(row)
        if bills is not None:
            return await bills.settle(row)
        try:
            await self.ctx.engine.confirm_payment(order_id, payment_id)
            return await self._keep(row)
        except engine_errors.OrderNotPending as exc:
            order: Order | None = exc.extra.get("order")
            status = str(exc.extra.get("status", ""))
            if order is not None and order.payment_id == payment_id:
                return await self._keep(row)  # kept earlier; the order moved on since
            if status in statuses.PAYMENT_KEPT:
                failure = Failure.DUPLICATE_PAYMENT
            elif status == "expired":
                failure = Failure.LATE_PAYMENT
            else:
                failure = Failure.PAID_AFTER_CANCEL
            winner = order.payment_id if order is not None else None
            detail = f"order {status}" + (f" (paid by {winner})" if winner else "")
            return await self._give_back(row, failure, detail)
        except engine_errors.OrderNotFound:
            return await self._give_back(row, Failure.UNKNOWN_ORDER, "order not found in Redis")
        except (engine_errors.EngineUnavailable, engine_errors.OutcomeUnknown) as exc:
            # not confirmed, or not known to be: the repair confirms again (idempotent)
            await self.ctx.alert(
                Failure.CONFIRM_DEFERRED, payment_id=payment_id, order_id=order_id, error=str(exc)
            )
            await self.ctx.pool.execute(
                q("defer_settlement"), payment_id, self.ctx.settings.repair_after_s
            )
            return "deferred"

    async def _keep(self, row: Mapping[str, Any]) -> Outcome:
        try:
            kept = await self.ctx.pool.fetchval(q("keep_payment"), row["payment_id"])
        except asyncpg.UniqueViolationError:
            # Redis names this payment as the order's, yet another one is kept: page.
            await self.ctx.alert(
                Failure.DUPLICATE_PAYMENT,
                payment_id=row["payment_id"],
                order_id=row["order_id"],
                detail="a second payment marked kept for one order",
            )
            return "unknown"
        if kept is not None and row["method"] == "provider":
            await self._close_siblings(row)
        return "kept" if kept is not None else "already"

    async def close_siblings(self, row: Mapping[str, Any]) -> None:
        await self._close_siblings(row)

    async def give_back(self, row: Mapping[str, Any], failure: Failure, detail: str) -> Outcome:
        """Send a succeeded payment's money back: a balance debit at once, provider money
        through a refund for review."""
        return await self._give_back(row, failure, detail)

    async def _close_siblings(self, row: Mapping[str, Any]) -> None:
        """The order is paid: close its other open trades so they cannot be paid too."""
        others = await self.ctx.pool.fetch(
            q("other_open_attempts"), row["order_id"], row["payment_id"]
        )
        for other in others:
            await self.close_attempt(other)

    async def _give_back(self, row: Mapping[str, Any], failure: Failure, detail: str) -> Outcome:
        payment_id = row["payment_id"]
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            if row["method"] == "balance":
                changed = await conn.fetchrow(
                    q("reverse_balance_payment"), payment_id, f"{failure.value}: {detail}"
                )
                if changed is None:
                    return "already"
                if int(changed["captured_cents"]) > 0:
                    await wallet.move(
                        conn,
                        changed["user_id"],
                        changed["currency"],
                        int(changed["captured_cents"]),
                        "reversal",
                        payment_id=payment_id,
                        reason=f"{failure.value}: {detail}",
                        actor="system",
                    )
                outcome: Outcome = "reversed"
            else:
                changed = await conn.fetchrow(q("settle_as_refund"), payment_id)
                if changed is None:
                    return "already"
                await open_refund(conn, changed, failure.value, detail)
                outcome = "refund"
        if outcome == "reversed":
            report(Failure.BALANCE_REVERSED, payment_id=payment_id, order_id=row["order_id"])
        await self.ctx.alert(
            failure, payment_id=payment_id, order_id=row["order_id"], detail=detail
        )
        return outcome

    # -- what a provider says ------------------------------------------------------

    async def apply_trade(
        self, row: Mapping[str, Any], facts: TradeFacts, *, source: str
    ) -> Outcome:
        """Bring a payment in line with its trade at the provider, then settle it."""
        payment_id = row["payment_id"]
        known_trade = row["provider_trade_no"]
        if facts.order_id != row["order_id"] or (known_trade and facts.trade_no != known_trade):
            await self.ctx.alert(
                Failure.ORDER_MISMATCH,
                payment_id=payment_id,
                order_id=row["order_id"],
                notice_order_id=facts.order_id,
                trade_no=facts.trade_no,
                source=source,
            )
            return "mismatch"
        if facts.status == "pending":
            if row["status"] == "succeeded":
                report(Failure.STALE_NOTICE, payment_id=payment_id, source=source)
            return "ignored"
        if facts.status == "closed":
            await self.ctx.pool.execute(q("close_payment"), payment_id)
            return "closed"
        # succeeded: the money was taken, whatever we thought of the attempt
        mismatch = (facts.amount_cents, facts.currency) != (row["amount_cents"], row["currency"])
        won = await self.ctx.pool.fetchrow(
            q("succeed_payment"),
            payment_id,
            facts.amount_cents,
            facts.paid_at,
            facts.trade_no,
            self.ctx.settings.repair_after_s,
            source,
        )
        if won is None:
            # Lost the race (callback vs query vs another delivery): answer from what won.
            current = await self.ctx.get_payment(payment_id)
            assert current is not None
            if current["status"] == "succeeded" and current["settlement"] is None:
                return await self.settle(current)
            return "already"
        if source == "query":
            report(Failure.LOST_CALLBACK_RECOVERED, payment_id=payment_id, order_id=row["order_id"])
        if mismatch:
            return await self._give_back(
                won,
                Failure.AMOUNT_MISMATCH,
                f"provider took {facts.amount_cents} {facts.currency}, "
                f"expected {row['amount_cents']} {row['currency']}",
            )
        return await self.settle(won)

    # -- active queries and closing ------------------------------------------------

    async def _reschedule(self, payment_id: str, delay_s: float, error: str | None = None) -> None:
        await self.ctx.pool.execute(q("reschedule_query"), payment_id, delay_s, error)

    async def _recover_trade(self, row: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """A create whose answer was lost: the same out_trade_no gives the same trade."""
        provider = self.ctx.providers[row["provider"]]
        try:
            trade = await provider.create_trade(
                row["payment_id"],
                row["order_id"],
                int(row["amount_cents"]),
                row["currency"],
                self.ctx.settings.notify_url(row["provider"]),
                subject=f"order {row['order_id']}",
            )
        except ProviderUnavailable as exc:
            await self.ctx.alert(
                Failure.PROVIDER_UNREACHABLE,
                op="create",
                payment_id=row["payment_id"],
                error=str(exc),
            )
            return None
        except (ProviderRejected, ProviderProtocolError) as exc:
            await self.ctx.pool.execute(q("fail_open_attempt"), row["payment_id"], str(exc))
            return None
        recovered: asyncpg.Record | None = await self.ctx.pool.fetchrow(
            q("set_recovered_trade"), row["payment_id"], trade.trade_no, trade.pay_url
        )
        return recovered

    async def query_attempt(self, row: Mapping[str, Any]) -> Outcome:
        """The active query of one pending attempt (its callback is late or lost)."""
        ctx = self.ctx
        provider = ctx.providers.get(row["provider"])
        payment_id = row["payment_id"]
        if provider is None:
            await self._reschedule(payment_id, ctx.settings.query_backoff_max_s)
            return "unknown"
        if row["provider_trade_no"] is None:
            age_s = (datetime.now(UTC) - row["created_at"]).total_seconds()
            if age_s < ctx.settings.create_grace_s:
                # Its create call may still be under way: leave it to finish.
                await self._reschedule(payment_id, ctx.settings.create_grace_s - age_s)
                return "unknown"
            # The buyer never received this attempt's pay_url: find the trade and close it.
            await self.close_attempt(row)
            return "closed"
        try:
            trade = await provider.query(row["provider_trade_no"])
        except ProviderUnavailable as exc:
            await ctx.alert(
                Failure.PROVIDER_UNREACHABLE, op="query", payment_id=payment_id, error=str(exc)
            )
            backoff = ctx.backoff_s(int(row["query_attempts"]))
            await self._reschedule(payment_id, backoff, str(exc))
            return "unknown"
        except ProviderRejected as exc:
            if exc.code == "trade_not_found":
                await ctx.pool.execute(q("fail_open_attempt"), payment_id, str(exc))
                return "closed"
            await ctx.alert(Failure.PROVIDER_REJECTED, op="query", payment_id=payment_id)
            await self._reschedule(payment_id, ctx.settings.query_backoff_max_s, str(exc))
            return "unknown"
        except ProviderProtocolError as exc:
            await ctx.alert(Failure.PROVIDER_PROTOCOL_ERROR, op="query", payment_id=payment_id)
            await self._reschedule(payment_id, ctx.settings.query_backoff_max_s, str(exc))
            return "unknown"
        outcome = await self.apply_trade(row, _facts(trade), source="query")
        if trade.status == "pending":
            bills = self._for_bill(row)
            if bills is not None:
                payable = await bills.payable(row)
            else:
                order = await ctx.engine.get_order(row["order_id"])
                payable = order is not None and order.status == "pending_payment"
            if not payable:
                # Paid by another attempt, expired or cancelled: this trade must not be paid.
                await self.close_attempt(row)
                return "closed"
            await self._reschedule(payment_id, ctx.backoff_s(int(row["query_attempts"])))
        return outcome

    async def close_attempt(self, row: Mapping[str, Any]) -> CloseOutcome:
        """Close a pending attempt's trade; a trade found paid is applied instead."""
        ctx = self.ctx
        provider = ctx.providers.get(row["provider"])
        if provider is None:
            return "unknown"
        if row["provider_trade_no"] is None:
            recovered = await self._recover_trade(row)
            if recovered is None:
                current = await ctx.get_payment(row["payment_id"])
                return "closed" if current and current["status"] == "failed" else "unknown"
            row = recovered
        trade_no = row["provider_trade_no"]
        try:
            trade = await provider.close(trade_no)
        except ProviderRejected as exc:
            if exc.code == "trade_paid":
                try:
                    paid = await provider.query(trade_no)
                except ProviderError as qexc:
                    await ctx.alert(
                        Failure.PROVIDER_UNREACHABLE,
                        op="query",
                        payment_id=row["payment_id"],
                        error=str(qexc),
                    )
                    return "unknown"
                await self.apply_trade(row, _facts(paid), source="query")
                return "paid"
            if exc.code == "trade_not_found":
                await ctx.pool.execute(q("fail_unknown_trade"), row["payment_id"])
                return "closed"
            await ctx.alert(
                Failure.PROVIDER_REJECTED, op="close", payment_id=row["payment_id"], error=str(exc)
            )
            return "unknown"
        except (ProviderUnavailable, ProviderProtocolError) as exc:
            await ctx.alert(
                Failure.PROVIDER_UNREACHABLE,
                op="close",
                payment_id=row["payment_id"],
                error=str(exc),
            )
            return "unknown"
        await self.apply_trade(row, _facts(trade), source="close")
        return "paid" if trade.status == "succeeded" else "closed"


async def open_refund(
    conn: asyncpg.Connection,
    payment: Mapping[str, Any],
    reason: str,
    detail: str,
    *,
    cancels_order: bool = False,
) -> None:
    """A refund request for operator review, once per payment."""
    await conn.execute(
        q("insert_refund_request"),
        new_id("rf"),
        payment["payment_id"],
        payment["order_id"],
        sale_id_of_order(payment["order_id"]),
        payment["user_id"],
        payment["method"],
        int(payment["captured_cents"] or 0),
        payment["currency"],
        reason,
        detail,
        cancels_order,
    )


def _facts(trade: Trade) -> TradeFacts:
    return TradeFacts(
        status=trade.status,
        trade_no=trade.trade_no,
        order_id=trade.order_id,
        amount_cents=int(trade.amount_cents),
        currency=trade.currency,
        paid_at=trade.paid_at,
    )
