"""In-memory trades, faults and counters of one simulator process.

Concurrency: every method here is synchronous and never awaits, so on the
single asyncio loop each call runs to completion before another request's
code can run: a check and the write that follows it cannot interleave. No
lock is needed as long as it stays that way; anything that waits (the query
delay, callback delivery) happens outside, in the app and the notifier.
State lives in one process, so the simulator is served by one worker.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from .faults import DeliveryPlan, Faults, plan_delivery, rng_for
from .wire import (
    CallbackBody,
    CreateTrade,
    FaultsView,
    RefundRequest,
    RefundView,
    Stats,
    TradeStatus,
    TradeView,
)

__all__ = ["DeliveryJob", "Notice", "PaysimState", "SimError"]


class SimError(Exception):
    """A refusal the app turns into `{code, detail}` with this HTTP status."""

    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """A notification's content; each delivery adds its own `notify_time`."""

    notify_id: str
    trade_no: str
    out_trade_no: str
    order_id: str
    status: TradeStatus
    amount_cents: int
    currency: str
    paid_at: datetime | None

    def body(self, notify_time: datetime) -> CallbackBody:
        return CallbackBody(
            notify_id=self.notify_id,
            trade_no=self.trade_no,
            out_trade_no=self.out_trade_no,
            order_id=self.order_id,
            status=self.status,
            amount_cents=self.amount_cents,
            currency=self.currency,
            paid_at=self.paid_at,
            notify_time=notify_time,
        )


class DeliveryJob(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the notifier needs for one payment's callbacks."""

    notify_url: str
    notice: Notice
    stale: Notice | None
    """The out-of-order `pending` notice, sent after `notice` when the plan says so."""
    plan: DeliveryPlan


@dataclass(slots=True)
class _Trade:
    trade_no: str
    out_trade_no: str
    order_id: str
    amount_cents: int
    currency: str
    subject: str | None
    notify_url: str
    pay_url: str
    created_at: datetime
    notify_rng: random.Random
    query_rng: random.Random
    status: TradeStatus = "pending"
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunds: dict[str, RefundView] = field(default_factory=dict)
    refunded_cents: int = 0
    faults: Faults | None = None

    def view(self) -> TradeView:
        return TradeView(
            trade_no=self.trade_no,
            out_trade_no=self.out_trade_no,
            order_id=self.order_id,
            status=self.status,
            amount_cents=self.amount_cents,
            refunded_cents=self.refunded_cents,
            currency=self.currency,
            subject=self.subject,
            pay_url=self.pay_url,
            created_at=self.created_at,
            paid_at=self.paid_at,
            closed_at=self.closed_at,
            refunds=list(self.refunds.values()),
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PaysimState:
    def __init__(
        self,
        *,
        seed: int,
        faults: Faults,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.seed = seed
        self.faults = faults
        self.stats = Stats()
        self._clock = clock
        self._trades: dict[str, _Trade] = {}
        self._by_out_trade_no: dict[str, str] = {}
        self._global_query_rng = rng_for(seed, "", "query")

    # -- trades -------------------------------------------------------------

    def create(self, req: CreateTrade, base_url: str) -> tuple[TradeView, bool]:
        """Open a trade, or return the one already opened for this out_trade_no.

        Returns the trade and whether it was created now. The same
        out_trade_no with a different order, amount or currency is refused,
        as real gateways do: it would otherwise silently charge the old amount.
        """
        existing = self._by_out_trade_no.get(req.out_trade_no)
        if existing is not None:
            trade = self._trades[existing]
            if (trade.order_id, trade.amount_cents, trade.currency) != (
                req.order_id,
                req.amount_cents,
                req.currency,
            ):
                raise SimError(
                    409,
                    "out_trade_no_conflict",
                    "out_trade_no already used with a different order_id, amount or currency",
                )
            return trade.view(), False
        now = self._clock()
        # Random, not seeded: trade numbers must not repeat across restarts.
        trade_no = f"sim{now:%Y%m%d}{secrets.token_hex(8)}"
        trade = _Trade(
            trade_no=trade_no,
            out_trade_no=req.out_trade_no,
            order_id=req.order_id,
            amount_cents=req.amount_cents,
            currency=req.currency,
            subject=req.subject,
            notify_url=req.notify_url,
            pay_url=f"{base_url.rstrip('/')}/trades/{trade_no}/pay",
            created_at=now,
            notify_rng=rng_for(self.seed, req.out_trade_no, "notify"),
            query_rng=rng_for(self.seed, req.out_trade_no, "query"),
        )
        self._trades[trade_no] = trade
        self._by_out_trade_no[req.out_trade_no] = trade_no
        self.stats.trades_created += 1
        return trade.view(), True

    def _get(self, trade_no: str) -> _Trade:
        trade = self._trades.get(trade_no)
        if trade is None:
            raise SimError(404, "trade_not_found", f"no trade {trade_no}")
        return trade

    def query_faults(self, trade_no: str) -> tuple[float, bool]:
        """Draw the query faults for one GET: (delay seconds, answer 503?)."""
        self.stats.queries += 1
        trade = self._trades.get(trade_no)
        if trade is None:  # unknown trades still see global faults, then their 404
            faults, rng = self.faults, self._global_query_rng
        else:
            faults, rng = self._faults_of(trade), trade.query_rng
        fail = rng.random() < faults.query_fail_rate
        if fail:
            self.stats.queries_failed += 1
        return faults.query_delay_s, fail

    def query(self, trade_no: str) -> TradeView:
        return self._get(trade_no).view()

    def pay(self, trade_no: str) -> tuple[TradeView, DeliveryJob | None]:
        """The buyer pays. Paying again is a no-op: one payment, one set of callbacks."""
        trade = self._get(trade_no)
        if trade.status == "closed":
            raise SimError(409, "trade_closed", "the trade was closed before payment")
        if trade.status == "succeeded":
            return trade.view(), None
        trade.status = "succeeded"
        trade.paid_at = self._clock()
        self.stats.trades_paid += 1
        plan = plan_delivery(self._faults_of(trade), trade.notify_rng)
        notice = self._notice(trade, "succeeded")
        stale = self._notice(trade, "pending") if plan.out_of_order else None
        job = DeliveryJob(notify_url=trade.notify_url, notice=notice, stale=stale, plan=plan)
        return trade.view(), job

    def _notice(self, trade: _Trade, status: TradeStatus) -> Notice:
        return Notice(
            notify_id=f"ntf_{uuid.uuid4().hex}",
            trade_no=trade.trade_no,
            out_trade_no=trade.out_trade_no,
            order_id=trade.order_id,
            status=status,
            amount_cents=trade.amount_cents,
            currency=trade.currency,
            paid_at=trade.paid_at if status == "succeeded" else None,
        )

    def close(self, trade_no: str) -> TradeView:
        """Close an unpaid trade so it can no longer be paid. Closing twice is fine."""
        trade = self._get(trade_no)
        if trade.status == "succeeded":
            raise SimError(409, "trade_paid", "the trade is paid; refund it instead")
        if trade.status == "pending":
            trade.status = "closed"
            trade.closed_at = self._clock()
            self.stats.trades_closed += 1
        return trade.view()

    def refund(self, trade_no: str, req: RefundRequest) -> TradeView:
        """Refund part or all of a paid trade, exactly once per refund_no."""
        trade = self._get(trade_no)
        previous = trade.refunds.get(req.refund_no)
        if previous is not None:
            # Checked first so a retried refund succeeds even once the trade is fully refunded.
            if previous.amount_cents != req.amount_cents:
                raise SimError(
                    409,
                    "refund_no_conflict",
                    f"refund_no {req.refund_no} was used for {previous.amount_cents} cents",
                )
            self.stats.refunds_replayed += 1
            return trade.view()
        if trade.status != "succeeded":
            raise SimError(409, "trade_not_paid", f"cannot refund a {trade.status} trade")
        remaining = trade.amount_cents - trade.refunded_cents
        if req.amount_cents > remaining:
            raise SimError(
                409,
                "refund_exceeds_amount",
                f"{req.amount_cents} cents asked, {remaining} cents left to refund",
            )
        trade.refunds[req.refund_no] = RefundView(
            refund_no=req.refund_no, amount_cents=req.amount_cents, created_at=self._clock()
        )
        trade.refunded_cents += req.amount_cents
        self.stats.refunds += 1
        return trade.view()

    # -- faults -------------------------------------------------------------

    def _faults_of(self, trade: _Trade) -> Faults:
        return self.faults if trade.faults is None else trade.faults

    def trade_faults(self, trade_no: str) -> FaultsView:
        trade = self._get(trade_no)
        if trade.faults is None:
            return FaultsView(faults=self.faults, source="global")
        return FaultsView(faults=trade.faults, source="trade")

    def set_trade_faults(self, trade_no: str, faults: Faults | None) -> FaultsView:
        """Override the global faults for one trade (None: follow the global set again)."""
        self._get(trade_no).faults = faults
        return self.trade_faults(trade_no)
