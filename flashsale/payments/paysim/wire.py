"""The simulator's wire shapes: what it accepts (strict) and what it answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from .faults import Faults

__all__ = [
    "CallbackBody",
    "CreateTrade",
    "ErrorBody",
    "FaultsView",
    "Health",
    "RefundRequest",
    "RefundView",
    "Stats",
    "TradeStatus",
    "TradeView",
]

TradeStatus = Literal["pending", "succeeded", "closed"]

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Cents = Annotated[int, msgspec.Meta(gt=0)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
HttpUrl = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^https?://[^\s]+$")]


class CreateTrade(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    out_trade_no: Key
    """The merchant's payment id; the idempotency key of trade creation."""
    order_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    amount_cents: Cents
    currency: Currency
    notify_url: HttpUrl
    subject: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class RefundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refund_no: Key
    """The merchant's refund id; a refund is applied once per refund_no."""
    amount_cents: Cents


class RefundView(msgspec.Struct, frozen=True):
    refund_no: str
    amount_cents: int
    created_at: datetime


class TradeView(msgspec.Struct, frozen=True):
    trade_no: str
    out_trade_no: str
    order_id: str
    status: TradeStatus
    amount_cents: int
    refunded_cents: int
    currency: str
    subject: str | None
    pay_url: str
    created_at: datetime
    paid_at: datetime | None
    closed_at: datetime | None
    refunds: list[RefundView]


class CallbackBody(msgspec.Struct, frozen=True):
    """One asynchronous notification, as POSTed to the merchant's notify_url."""

    notify_id: str
    """Same for every delivery of one notice (retries, duplicates): dedupe on it."""
    trade_no: str
    out_trade_no: str
    order_id: str
    status: TradeStatus
    amount_cents: int
    currency: str
    paid_at: datetime | None
    notify_time: datetime
    """When this delivery was sent (microseconds): no two deliveries sign the same bytes."""


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    detail: str = ""


class FaultsView(msgspec.Struct, frozen=True):
    faults: Faults
    source: Literal["global", "trade"]
    """Whether a trade's faults are its own override or the global set."""


class Stats(msgspec.Struct):
    """Counters since start.

    `callbacks_sent/acked/failed` count HTTP attempts; `callbacks_dropped` counts
    notices swallowed by `drop_rate` (they make no attempt); `notices_*` count notices.
    """

    trades_created: int = 0
    trades_paid: int = 0
    trades_closed: int = 0
    queries: int = 0
    queries_failed: int = 0
    refunds: int = 0
    refunds_replayed: int = 0
    notices_scheduled: int = 0
    notices_given_up: int = 0
    notices_duplicated: int = 0
    notices_stale: int = 0
    callbacks_sent: int = 0
    callbacks_acked: int = 0
    callbacks_failed: int = 0
    callbacks_dropped: int = 0
    deliveries_in_flight: int = 0
    """Notices still being delivered or waiting for a retry."""


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]
    seed: int
