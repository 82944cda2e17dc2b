"""The payment flow: attempts, callbacks, active queries, settlement, cancellation.

Money facts live in PostgreSQL, order states in Redis (the engine). Every
payment state change is a conditional UPDATE whose returned row is checked;
when it changed nothing, the row is read again and the answer comes from
whatever won (seed 000). A succeeded payment is then *settled* against its
order with ``Engine.confirm_payment``:

- confirmed (or already confirmed by this same payment): ``settlement = kept``;
  a unique index allows one kept payment per order;
- the order was paid by another payment, expired or was cancelled: the money
  is not kept silently. Provider money becomes a refund for operator review
  (``settlement = refund`` plus a ``refunds`` row, in one transaction); a
  balance debit is credited back at once (``status = reversed``): it never
  left our ledger, so there is nothing for an operator to recover;
- Redis did not answer: the payment stays unsettled and the timers settle it
  later (the internal lost order of seed 000).

Provider attempts are found again when their callback is lost: an active query
at the provider's usual callback time, then back-off (see ``timers``). Before
an order with an attempt in flight expires or is cancelled, its trades are
queried and closed at the provider, so a paid order is never expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from flashsale.engine import errors as engine_errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import sale_id_of_order
from flashsale.engine.models import Order
from flashsale.payments import errors, order_states, wallet
from flashsale.payments.failures import Failure, report, severity_of
from flashsale.payments.models import CallbackAnswer, Payment, PaymentCreate, Wallet, row_to
from flashsale.payments.passwords import PasswordPolicy, Passwords
from flashsale.payments.provider import (
    MalformedCallback,
    Provider,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from flashsale.payments.signing import SignatureError

Outcome = Literal[
    "kept", "refund", "reversed", "deferred", "already", "ignored", "closed", "mismatch", "unknown"
]
CloseOutcome = Literal["closed", "paid", "unknown"]

_PAID_LIKE = frozenset({"paid", "delivered", "refund_pending", "refunded"})


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """Timings of the flow. Defaults suit a real gateway; tests shrink them."""

    public_url: str = "http://127.0.0.1:8000"
    """Base of the callback URL given to providers: + /v1/payments/callbacks/{provider}."""
    callback_window_s: float = 60.0
    """The provider's usual callback time: the first active query comes after it."""
    query_backoff_s: float = 60.0
    query_backoff_max_s: float = 1800.0
    lease_s: float = 30.0
    """How long a timer process holds claimed work before another may take it."""
    repair_after_s: float = 5.0
    """A succeeded payment still unsettled after this is settled by the timers."""
    expiry_grace_s: float = 300.0
    """How long an expiry waits for an unreachable provider before expiring anyway."""
    expiry_retry_s: float = 5.0
    start_margin_s: float = 2.0
    """No attempt starts this close to the deadline (covers clock skew against expiry)."""
    create_grace_s: float = 30.0
    """An attempt without a trade this long after it started lost its create answer."""
    replay_memory_s: float = 900.0
    """Signatures are remembered this long (over 2 x the 300 s timestamp window)."""
    concurrency: int = 32

    def notify_url(self, provider: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/payments/callbacks/{provider}"


@dataclass(frozen=True, slots=True)
class TradeFacts:
    """What a provider says about a trade (from a callback or a query)."""

    status: str
    trade_no: str
    order_id: str
    amount_cents: int
    currency: str
    paid_at: datetime | None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _payment(row: Mapping[str, Any]) -> Payment:
    payment: Payment = row_to(Payment, row)
    return payment


class PaymentService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: Engine,
        providers: Mapping[str, Provider],
        settings: PaymentSettings | None = None,
        *,
        password_policy: PasswordPolicy | None = None,
    ) -> None:
        self.pool = pool
        self.engine = engine
        self.providers = dict(providers)
        self.settings = settings or PaymentSettings()
        self.passwords = Passwords(pool, password_policy)

    # -- failures ------------------------------------------------------------------

    async def fail(self, failure: Failure, **fields: Any) -> None:
        """Report a failure; alerting classes are also stored in payment_alerts."""
        record = report(failure, **fields)
        if severity_of(failure) == "log":
            return
        try:
            await self.pool.execute(
                "INSERT INTO payment_alerts (class, severity, order_id, payment_id, detail)"
                " VALUES ($1, $2, $3, $4, $5::jsonb)",
                failure.value,
                record["severity"],
                fields.get("order_id"),
                fields.get("payment_id"),
                _json(fields),
            )
        except (asyncpg.PostgresError, OSError):
            pass  # the log line and the counter already carry it

    # -- reads ---------------------------------------------------------------------

    async def get_payment(self, payment_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM payments WHERE payment_id = $1", payment_id)

    async def payments_for_order(self, order_id: str) -> list[Payment]:
        rows = await self.pool.fetch(
            "SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, payment_id", order_id
        )
        return [_payment(r) for r in rows]

    async def _owned_order(self, order_id: str, user_id: str | None) -> Order:
        order = await self.engine.get_order(order_id)
        if order is None or (user_id is not None and order.user_id != user_id):
            raise errors.OrderNotFound()
        return order

    async def _payable_order(self, order_id: str, user_id: str) -> Order:
        order = await self._owned_order(order_id, user_id)
        if order.status != "pending_payment":
            report(Failure.ORDER_NOT_PAYABLE, order_id=order_id, status=order.status)
            raise errors.OrderNotPayable(f"the order is {order.status}", status=order.status)
        deadline_ms = int(order.expires_at.timestamp() * 1000)
        if self.engine.clock() >= deadline_ms - int(self.settings.start_margin_s * 1000):
            report(Failure.ORDER_NOT_PAYABLE, order_id=order_id, status="deadline")
            raise errors.OrderNotPayable("the payment deadline has passed", status=order.status)
        try:
            sale = await self.engine.get_sale(order.sale_id)
        except engine_errors.SaleNotFound:
            sale = None
        if sale is None or (sale.price_cents, sale.currency) != (order.price_cents, order.currency):
            # seed 001: the item changed while the order waited; it cannot be paid any more
            reason = "sale delisted" if sale is None else "price changed"
            await self.cancel_order(order_id, None, reason=reason, force=True)
            report(Failure.ORDER_NOT_PAYABLE, order_id=order_id, status=reason)
            raise errors.OrderNotPayable(f"the order was cancelled: {reason}", status="cancelled")
        return order

    # -- starting a payment --------------------------------------------------------

    async def start_payment(self, order_id: str, user_id: str, body: PaymentCreate) -> Payment:
        if body.method == "balance":
            assert body.payment_password is not None
            return await self._pay_by_balance(order_id, user_id, body.payment_password)
        assert body.provider is not None
        return await self._start_provider(order_id, user_id, body.provider)

    async def _start_provider(self, order_id: str, user_id: str, name: str) -> Payment:
        provider = self.providers.get(name)
        if provider is None:
            raise errors.UnknownProvider(f"no payment provider named {name}")
        order = await self._payable_order(order_id, user_id)
        if order.price_cents <= 0:
            raise errors.OrderNotPayable("nothing to pay: use the balance method", status="free")
        payment_id = new_id("pay")
        row = await self.pool.fetchrow(
            """
            INSERT INTO payments (payment_id, order_id, sale_id, user_id, method, provider,
                                  status, amount_cents, currency, next_query_at)
            VALUES ($1, $2, $3, $4, 'provider', $5, 'pending', $6, $7,
                    now() + make_interval(secs => $8))
            RETURNING *
            """,
            payment_id,
            order_id,
            order.sale_id,
            user_id,
            name,
            order.price_cents,
            order.currency,
            self.settings.callback_window_s,
        )
        try:
            trade = await provider.create_trade(
                payment_id,
                order_id,
                order.price_cents,
                order.currency,
                self.settings.notify_url(name),
                subject=f"order {order_id}",
            )
        except ProviderUnavailable as exc:
            # Outcome unknown: the row stays pending without a trade; the timers find
            # the trade again by its out_trade_no and close it (the buyer never saw it).
            await self.fail(
                Failure.PROVIDER_UNREACHABLE, op="create", payment_id=payment_id, error=str(exc)
            )
            raise errors.ProviderUnavailable("the payment provider did not answer") from exc
        except (ProviderRejected, ProviderProtocolError) as exc:
            await self.pool.execute(
                "UPDATE payments SET status = 'failed', last_error = $2, updated_at = now(),"
                " next_query_at = NULL WHERE payment_id = $1 AND status = 'pending'",
                payment_id,
                str(exc),
            )
            failure = (
                Failure.PROVIDER_REJECTED
                if isinstance(exc, ProviderRejected)
                else Failure.PROVIDER_PROTOCOL_ERROR
            )
            await self.fail(failure, op="create", payment_id=payment_id, error=str(exc))
            raise errors.ProviderUnavailable("the payment provider refused the trade") from exc
        row = await self.pool.fetchrow(
            "UPDATE payments SET provider_trade_no = $2, pay_url = $3, updated_at = now()"
            " WHERE payment_id = $1 RETURNING *",
            payment_id,
            trade.trade_no,
            trade.pay_url,
        )
        assert row is not None
        return _payment(row)

    async def _pay_by_balance(self, order_id: str, user_id: str, password: str) -> Payment:
        order = await self._payable_order(order_id, user_id)
        # seed 001: the payment password is asked even when the balance covers it all
        await self.passwords.verify(user_id, password)
        payment_id = new_id("pay")
        amount = order.price_cents
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO payments (payment_id, order_id, sale_id, user_id, method, status,
                                      amount_cents, currency, captured_cents, succeeded_at,
                                      next_query_at, confirmed_via)
                VALUES ($1, $2, $3, $4, 'balance', 'succeeded', $5, $6, $5, now(),
                        now() + make_interval(secs => $7), 'balance')
                RETURNING *
                """,
                payment_id,
                order_id,
                order.sale_id,
                user_id,
                amount,
                order.currency,
                self.settings.repair_after_s,
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
        outcome = await self.settle(row)
        if outcome == "kept":
            return _payment(row)
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

    # -- settlement ----------------------------------------------------------------

    async def settle(self, row: Mapping[str, Any]) -> Outcome:
        """Confirm a succeeded payment's order in Redis, or send the money back."""
        payment_id, order_id = row["payment_id"], row["order_id"]
        try:
            await self.engine.confirm_payment(order_id, payment_id)
            return await self._keep(row)
        except engine_errors.OrderNotPending as exc:
            order: Order | None = exc.extra.get("order")
            status = str(exc.extra.get("status", ""))
            if order is not None and order.payment_id == payment_id:
                return await self._keep(row)  # kept earlier; the order moved on since
            if status in _PAID_LIKE:
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
        except engine_errors.EngineUnavailable as exc:
            await self.fail(
                Failure.CONFIRM_DEFERRED, payment_id=payment_id, order_id=order_id, error=str(exc)
            )
            await self.pool.execute(
                "UPDATE payments SET next_query_at = now() + make_interval(secs => $2)"
                " WHERE payment_id = $1 AND settlement IS NULL",
                payment_id,
                self.settings.repair_after_s,
            )
            return "deferred"

    async def _keep(self, row: Mapping[str, Any]) -> Outcome:
        try:
            kept = await self.pool.fetchval(
                "UPDATE payments SET settlement = 'kept', settled_at = now(), updated_at = now(),"
                " next_query_at = NULL WHERE payment_id = $1 AND status = 'succeeded'"
                " AND settlement IS NULL RETURNING 1",
                row["payment_id"],
            )
        except asyncpg.UniqueViolationError:
            # Redis names this payment as the order's, yet another one is kept: page.
            await self.fail(
                Failure.DUPLICATE_PAYMENT,
                payment_id=row["payment_id"],
                order_id=row["order_id"],
                detail="a second payment marked kept for one order",
            )
            return "unknown"
        if kept is not None and row["method"] == "provider":
            await self._close_siblings(row)
        return "kept" if kept is not None else "already"

    async def _close_siblings(self, row: Mapping[str, Any]) -> None:
        """The order is paid: close its other open trades so they cannot be paid too."""
        others = await self.pool.fetch(
            "SELECT * FROM payments WHERE order_id = $1 AND payment_id <> $2"
            " AND status = 'pending' AND method = 'provider'",
            row["order_id"],
            row["payment_id"],
        )
        for other in others:
            await self.close_attempt(other)

    async def _give_back(self, row: Mapping[str, Any], failure: Failure, detail: str) -> Outcome:
        payment_id = row["payment_id"]
        async with self.pool.acquire() as conn, conn.transaction():
            if row["method"] == "balance":
                changed = await conn.fetchrow(
                    "UPDATE payments SET status = 'reversed', settled_at = now(),"
                    " updated_at = now(), next_query_at = NULL, last_error = $2"
                    " WHERE payment_id = $1 AND status = 'succeeded' AND settlement IS NULL"
                    " RETURNING *",
                    payment_id,
                    f"{failure.value}: {detail}",
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
                changed = await conn.fetchrow(
                    "UPDATE payments SET settlement = 'refund', settled_at = now(),"
                    " updated_at = now(), next_query_at = NULL"
                    " WHERE payment_id = $1 AND status = 'succeeded' AND settlement IS NULL"
                    " RETURNING *",
                    payment_id,
                )
                if changed is None:
                    return "already"
                await open_refund(conn, changed, failure.value, detail)
                outcome = "refund"
        if outcome == "reversed":
            report(Failure.BALANCE_REVERSED, payment_id=payment_id, order_id=row["order_id"])
        await self.fail(failure, payment_id=payment_id, order_id=row["order_id"], detail=detail)
        return outcome

    # -- what a provider says ------------------------------------------------------

    async def apply_trade(
        self, row: Mapping[str, Any], facts: TradeFacts, *, source: str
    ) -> Outcome:
        """Bring a payment in line with its trade at the provider, then settle it."""
        payment_id = row["payment_id"]
        known_trade = row["provider_trade_no"]
        if facts.order_id != row["order_id"] or (known_trade and facts.trade_no != known_trade):
            await self.fail(
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
            await self.pool.execute(
                "UPDATE payments SET status = 'closed', updated_at = now(), next_query_at = NULL"
                " WHERE payment_id = $1 AND status = 'pending'",
                payment_id,
            )
            return "closed"
        # succeeded: the money was taken, whatever we thought of the attempt
        mismatch = (facts.amount_cents, facts.currency) != (row["amount_cents"], row["currency"])
        won = await self.pool.fetchrow(
            """
            UPDATE payments
               SET status = 'succeeded', captured_cents = $2, succeeded_at = now(),
                   provider_paid_at = $3, provider_trade_no = COALESCE(provider_trade_no, $4),
                   updated_at = now(), next_query_at = now() + make_interval(secs => $5),
                   confirmed_via = $6
             WHERE payment_id = $1 AND status IN ('pending', 'closed', 'failed')
            RETURNING *
            """,
            payment_id,
            facts.amount_cents,
            facts.paid_at,
            facts.trade_no,
            self.settings.repair_after_s,
            source,
        )
        if won is None:
            # Lost the race (callback vs query vs another delivery): answer from what won.
            current = await self.get_payment(payment_id)
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

    # -- callbacks -----------------------------------------------------------------

    async def handle_callback(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> CallbackAnswer:
        """``POST /v1/payments/callbacks/{provider}``: 200 once the notice is durable."""
        provider = self.providers.get(provider_name)
        if provider is None:
            return CallbackAnswer(status_code=404, body={"code": "unknown_provider"})
        try:
            notice = provider.verify_callback(headers, body)
        except SignatureError as exc:
            failure = Failure.STALE_CALLBACK if exc.reason == "stale" else Failure.BAD_SIGNATURE
            await self.fail(failure, provider=provider_name, reason=exc.reason)
            return CallbackAnswer(status_code=401, body={"code": "unauthenticated"})
        except MalformedCallback as exc:
            await self.fail(Failure.MALFORMED_CALLBACK, provider=provider_name, error=str(exc))
            return CallbackAnswer(status_code=400, body={"code": "validation_error"})
        try:
            return await self._process_notice(provider_name, notice)
        except (asyncpg.PostgresError, OSError) as exc:
            # Not durable: a non-200 makes the provider deliver again later.
            await self.fail(Failure.CONFIRM_DEFERRED, notify_id=notice.notify_id, error=repr(exc))
            return CallbackAnswer(status_code=503, body={"code": "try_again"})

    async def _process_notice(self, provider_name: str, notice: Any) -> CallbackAnswer:
        digest = hashlib.sha256(notice.signature.encode()).digest()
        fresh = await self.pool.fetchval(
            "INSERT INTO callback_signatures (provider, digest) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            provider_name,
            digest,
        )
        if fresh is None:
            await self.fail(
                Failure.REPLAYED_CALLBACK, provider=provider_name, notify_id=notice.notify_id
            )
            return CallbackAnswer(status_code=401, body={"code": "unauthenticated"})
        seen = await self.pool.fetchval(
            "UPDATE callback_notices SET deliveries = deliveries + 1, last_seen_at = now()"
            " WHERE provider = $1 AND notify_id = $2 RETURNING outcome",
            provider_name,
            notice.notify_id,
        )
        if seen is not None:
            report(Failure.DUPLICATE_CALLBACK, notify_id=notice.notify_id, outcome=seen)
            return CallbackAnswer(status_code=200, body={"result": "duplicate"})
        row = await self.pool.fetchrow(
            "SELECT * FROM payments WHERE payment_id = $1 AND provider = $2",
            notice.out_trade_no,
            provider_name,
        )
        outcome: Outcome
        if row is None:
            await self.fail(
                Failure.UNKNOWN_ORDER,
                provider=provider_name,
                notify_id=notice.notify_id,
                out_trade_no=notice.out_trade_no,
                trade_no=notice.trade_no,
                order_id=notice.order_id,
                status=notice.status,
                amount_cents=notice.amount_cents,
            )
            outcome = "unknown"
        else:
            facts = TradeFacts(
                status=notice.status,
                trade_no=notice.trade_no,
                order_id=notice.order_id,
                amount_cents=notice.amount_cents,
                currency=notice.currency,
                paid_at=notice.paid_at,
            )
            outcome = await self.apply_trade(row, facts, source="callback")
        await self.pool.execute(
            "INSERT INTO callback_notices (provider, notify_id, payment_id, status, outcome)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, notify_id) DO UPDATE"
            " SET deliveries = callback_notices.deliveries + 1, last_seen_at = now()",
            provider_name,
            notice.notify_id,
            notice.out_trade_no,
            notice.status,
            outcome,
        )
        return CallbackAnswer(status_code=200, body={"result": outcome})

    # -- active queries and closing ------------------------------------------------

    def _backoff_s(self, attempts: int) -> float:
        s = self.settings
        return float(min(s.query_backoff_max_s, s.query_backoff_s * 2.0 ** max(0, attempts - 1)))

    async def _reschedule(self, payment_id: str, delay_s: float, error: str | None = None) -> None:
        await self.pool.execute(
            "UPDATE payments SET next_query_at = now() + make_interval(secs => $2),"
            " last_error = COALESCE($3, last_error)"
            " WHERE payment_id = $1 AND status = 'pending'",
            payment_id,
            delay_s,
            error,
        )

    async def _recover_trade(self, row: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """A create whose answer was lost: the same out_trade_no gives the same trade."""
        provider = self.providers[row["provider"]]
        try:
            trade = await provider.create_trade(
                row["payment_id"],
                row["order_id"],
                int(row["amount_cents"]),
                row["currency"],
                self.settings.notify_url(row["provider"]),
                subject=f"order {row['order_id']}",
            )
        except ProviderUnavailable as exc:
            await self.fail(
                Failure.PROVIDER_UNREACHABLE,
                op="create",
                payment_id=row["payment_id"],
                error=str(exc),
            )
            return None
        except (ProviderRejected, ProviderProtocolError) as exc:
            await self.pool.execute(
                "UPDATE payments SET status = 'failed', last_error = $2, next_query_at = NULL"
                " WHERE payment_id = $1 AND status = 'pending'",
                row["payment_id"],
                str(exc),
            )
            return None
        recovered: asyncpg.Record | None = await self.pool.fetchrow(
            "UPDATE payments SET provider_trade_no = $2, pay_url = $3"
            " WHERE payment_id = $1 RETURNING *",
            row["payment_id"],
            trade.trade_no,
            trade.pay_url,
        )
        return recovered

    async def query_attempt(self, row: Mapping[str, Any]) -> Outcome:
        """The active query of one pending attempt (its callback is late or lost)."""
        provider = self.providers.get(row["provider"])
        payment_id = row["payment_id"]
        if provider is None:
            await self._reschedule(payment_id, self.settings.query_backoff_max_s)
            return "unknown"
        if row["provider_trade_no"] is None:
            age_s = (datetime.now(UTC) - row["created_at"]).total_seconds()
            if age_s < self.settings.create_grace_s:
                # Its create call may still be under way: leave it to finish.
                await self._reschedule(payment_id, self.settings.create_grace_s - age_s)
                return "unknown"
            # The buyer never received this attempt's pay_url: find the trade and close it.
            await self.close_attempt(row)
            return "closed"
        try:
            trade = await provider.query(row["provider_trade_no"])
        except ProviderUnavailable as exc:
            await self.fail(
                Failure.PROVIDER_UNREACHABLE, op="query", payment_id=payment_id, error=str(exc)
            )
            backoff = self._backoff_s(int(row["query_attempts"]))
            await self._reschedule(payment_id, backoff, str(exc))
            return "unknown"
        except ProviderRejected as exc:
            if exc.code == "trade_not_found":
                await self.pool.execute(
                    "UPDATE payments SET status = 'failed', last_error = $2, next_query_at = NULL"
                    " WHERE payment_id = $1 AND status = 'pending'",
                    payment_id,
                    str(exc),
                )
                return "closed"
            await self.fail(Failure.PROVIDER_REJECTED, op="query", payment_id=payment_id)
            await self._reschedule(payment_id, self.settings.query_backoff_max_s, str(exc))
            return "unknown"
        except ProviderProtocolError as exc:
            await self.fail(Failure.PROVIDER_PROTOCOL_ERROR, op="query", payment_id=payment_id)
            await self._reschedule(payment_id, self.settings.query_backoff_max_s, str(exc))
            return "unknown"
        outcome = await self.apply_trade(row, _facts(trade), source="query")
        if trade.status == "pending":
            order = await self.engine.get_order(row["order_id"])
            if order is None or order.status != "pending_payment":
                # Paid by another attempt, expired or cancelled: this trade must not be paid.
                await self.close_attempt(row)
                return "closed"
            await self._reschedule(payment_id, self._backoff_s(int(row["query_attempts"])))
        return outcome

    async def close_attempt(self, row: Mapping[str, Any]) -> CloseOutcome:
        """Close a pending attempt's trade; a trade found paid is applied instead."""
        provider = self.providers.get(row["provider"])
        if provider is None:
            return "unknown"
        if row["provider_trade_no"] is None:
            recovered = await self._recover_trade(row)
            if recovered is None:
                current = await self.get_payment(row["payment_id"])
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
                    await self.fail(
                        Failure.PROVIDER_UNREACHABLE,
                        op="query",
                        payment_id=row["payment_id"],
                        error=str(qexc),
                    )
                    return "unknown"
                await self.apply_trade(row, _facts(paid), source="query")
                return "paid"
            if exc.code == "trade_not_found":
                await self.pool.execute(
                    "UPDATE payments SET status = 'failed', next_query_at = NULL"
                    " WHERE payment_id = $1 AND status = 'pending'",
                    row["payment_id"],
                )
                return "closed"
            await self.fail(
                Failure.PROVIDER_REJECTED, op="close", payment_id=row["payment_id"], error=str(exc)
            )
            return "unknown"
        except (ProviderUnavailable, ProviderProtocolError) as exc:
            await self.fail(
                Failure.PROVIDER_UNREACHABLE,
                op="close",
                payment_id=row["payment_id"],
                error=str(exc),
            )
            return "unknown"
        await self.apply_trade(row, _facts(trade), source="close")
        return "paid" if trade.status == "succeeded" else "closed"

    async def _resolve_in_flight(self, order_id: str) -> bool:
        """Query and close every open trade of an order; False when one stayed unknown."""
        rows = await self.pool.fetch(
            "SELECT * FROM payments WHERE order_id = $1 AND status = 'pending'"
            " AND method = 'provider' ORDER BY created_at",
            order_id,
        )
        resolved = True
        for row in rows:
            if await self.close_attempt(row) == "unknown":
                resolved = False
        return resolved

    # -- expiry and cancellation ---------------------------------------------------

    async def expire_order(self, order_id: str) -> str:
        """Expire a due order, asking the provider first: a paid order is never expired."""
        order = await self.engine.get_order(order_id)
        if order is None or order.status != "pending_payment":
            try:
                await self.engine.expire(order_id)  # unschedules it
            except engine_errors.EngineError:
                pass
            return "not_pending"
        if not await self._resolve_in_flight(order_id):
            deadline_ms = int(order.expires_at.timestamp() * 1000)
            if self.engine.clock() < deadline_ms + int(self.settings.expiry_grace_s * 1000):
                return "deferred"
            await self.fail(Failure.EXPIRED_WITHOUT_ANSWER, order_id=order_id)
        try:
            await self.engine.expire(order_id)
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
        order = await self._owned_order(order_id, user_id)
        if order.status == "pending_payment":
            if not await self._resolve_in_flight(order_id) and not force:
                raise errors.ProviderUnavailable(
                    "the payment provider did not answer; try cancelling again shortly"
                )
            try:
                return await self.engine.cancel(order_id, user_id=user_id, reason=reason)
            except engine_errors.OrderNotPending as exc:
                order = exc.extra["order"]  # paid meanwhile: handled below
        if order.status == "paid":
            return await self._cancel_paid(order, user_id, reason)
        if order.status in ("cancelled", "refund_pending"):
            return order
        raise errors.OrderNotCancellable(f"the order is {order.status}", status=order.status)

    async def _cancel_paid(self, order: Order, user_id: str | None, reason: str) -> Order:
        kept = await self.pool.fetchrow(
            "SELECT * FROM payments WHERE payment_id = $1 AND order_id = $2",
            order.payment_id,
            order.order_id,
        )
        if kept is None or kept["settlement"] != "kept":
            # The confirmation is still being recorded; the buyer may retry in a moment.
            raise errors.OrderNotCancellable("the payment is still being recorded; retry shortly")
        try:
            moved, _ = await order_states.request_refund(
                self.engine, order.order_id, user_id=user_id, reason=reason
            )
        except engine_errors.OrderNotPending as exc:
            status = exc.extra.get("status")
            raise errors.OrderNotCancellable(f"the order is {status}", status=status) from exc
        # After the Redis transition (a replay of it completes a crashed first try).
        async with self.pool.acquire() as conn:
            await open_refund(conn, kept, "order_cancelled", reason, cancels_order=True)
        return moved

    async def invalidate_pending_orders(self, sale_id: str, reason: str) -> list[str]:
        """Seed 001: the sale's price changed or it was delisted; its pending orders can no
        longer be paid. Each is cancelled with ``reason`` (its trades closed first)."""
        cancelled: list[str] = []
        for order_id in await order_states.pending_order_ids(self.engine, sale_id):
            try:
                order = await self.cancel_order(order_id, None, reason=reason, force=True)
            except errors.PaymentError:
                continue
            if order.status == "cancelled":
                cancelled.append(order_id)
        return cancelled

    # -- wallet and password ---------------------------------------------------------

    async def set_password(self, user_id: str, password: str, old_password: str | None) -> None:
        await self.passwords.set(user_id, password, old_password)

    async def wallet(self, user_id: str, currency: str = "CNY") -> Wallet:
        return await wallet.read(self.pool, user_id, currency)

    async def credit_wallet(
        self,
        user_id: str,
        amount_cents: int,
        reason: str,
        *,
        actor: str,
        currency: str = "CNY",
        idempotency_key: str | None = None,
    ) -> Wallet:
        return await wallet.credit(
            self.pool, user_id, amount_cents, currency, reason, actor, idempotency_key
        )


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
        """
        INSERT INTO refunds (refund_id, payment_id, order_id, sale_id, user_id, method,
                             amount_cents, currency, reason, detail, cancels_order)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (payment_id) DO NOTHING
        """,
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


def _facts(trade: Any) -> TradeFacts:
    return TradeFacts(
        status=trade.status,
        trade_no=trade.trade_no,
        order_id=trade.order_id,
        amount_cents=int(trade.amount_cents),
        currency=trade.currency,
        paid_at=trade.paid_at,
    )


def _json(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), default=str)


async def gather_bounded(limit: int, coros: list[Any]) -> list[Any]:
    """Run coroutines with at most ``limit`` at once; exceptions are returned, not raised."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
