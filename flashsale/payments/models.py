"""Wire shapes of the payment API (field names are the contract: docs/design.md#public-contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Password = Annotated[str, Meta(min_length=6, max_length=128)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold U+0000
PaymentMethod = Literal["provider", "balance"]
PaymentStatus = Literal["pending", "succeeded", "closed", "failed", "reversed"]
RefundStatus = Literal["pending", "approved", "rejected", "refunded"]


class PaymentCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """``{"method": "provider", "provider": "sim"}`` or
    ``{"method": "balance", "payment_password": "..."}``."""

    method: PaymentMethod
    provider: Annotated[str, Meta(min_length=1, max_length=32, pattern=NO_NUL)] | None = None
    payment_password: Annotated[str, Meta(max_length=128)] | None = None

    def __post_init__(self) -> None:
        if self.method == "provider" and self.provider is None:
            raise ValueError("`provider` is required when method is provider")
        if self.method == "balance" and self.payment_password is None:
            raise ValueError("`payment_password` is required when method is balance")


class Payment(Struct, kw_only=True):
    payment_id: str
    order_id: str
    method: PaymentMethod
    status: PaymentStatus
    amount_cents: int
    provider_trade_no: str | None
    pay_url: str | None
    currency: str
    provider: str | None = None
    created_at: datetime | None = None
    succeeded_at: datetime | None = None


class PasswordSet(Struct, forbid_unknown_fields=True, kw_only=True):
    password: Password
    old_password: Annotated[str, Meta(max_length=128)] | None = None


class WalletEntry(Struct, kw_only=True):
    entry_id: int
    amount_cents: int
    balance_after_cents: int
    kind: Literal["credit", "debit", "reversal", "refund"]
    reason: str
    payment_id: str | None
    refund_id: str | None
    created_at: datetime


class Wallet(Struct, kw_only=True):
    user_id: str
    balance_cents: int
    currency: str
    entries: list[WalletEntry]
    coins_cents: int = 0
    """Platform coins in this currency (spent at checkout, not balance)."""
    coin_entries: list[CoinEntry] = msgspec.field(default_factory=list)
    """The latest movements of the coins, latest first."""


class CoinEntry(Struct, kw_only=True):
    """One movement of a buyer's coins: credited, spent by a checkout, given back by an order."""

    entry_id: int
    amount_cents: int
    balance_after_cents: int
    kind: Literal["credit", "spend", "return"]
    reason: str
    checkout_id: str | None
    order_id: str | None
    created_at: datetime


class WalletCredit(Struct, forbid_unknown_fields=True, kw_only=True):
    amount_cents: Annotated[int, Meta(gt=0, le=10**12)]
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=NO_NUL)]
    currency: Currency = "CNY"
    kind: Literal["balance", "coins"] = "balance"


class Refund(Struct, kw_only=True):
    refund_id: str
    order_id: str
    payment_id: str
    amount_cents: int
    reason: str
    status: RefundStatus
    created_at: datetime
    currency: str
    method: str
    detail: str = ""
    decided_at: datetime | None = None
    decided_by: str | None = None
    executed_at: datetime | None = None
    last_error: str | None = None
    """Why the last try to send the money back failed (cleared once it is sent)."""
    next_attempt_at: datetime | None = None
    """When the timers try an approved refund again (none: sent, or refused for good)."""


class LedgerEntry(Struct, kw_only=True):
    """One movement of a buyer's balance or coins, as an admin reads it."""

    entry_id: int
    """Unique within its ``ledger``."""
    currency: str
    amount_cents: int
    balance_after_cents: int
    kind: Literal["credit", "debit", "reversal", "refund", "spend", "return"]
    """Balance: credit, debit, reversal, refund; coins: credit, spend, return."""
    reason: str
    actor: str
    payment_id: str | None
    refund_id: str | None
    idempotency_key: str | None
    created_at: datetime
    ledger: Literal["balance", "coins"] = "balance"
    checkout_id: str | None = None
    """Coins: the checkout that spent them, or whose order gave them back."""
    order_id: str | None = None
    """Coins: the order that gave them back."""


class Balance(Struct, kw_only=True):
    currency: str
    balance_cents: int
    coins_cents: int = 0


class Ledger(Struct, kw_only=True):
    """A buyer's balances and coins, and one page of both ledgers' movements, latest first."""

    user_id: str
    balances: list[Balance]
    entries: list[LedgerEntry]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; none: this was the last."""


class PasswordAction(Struct, kw_only=True):
    action: Literal["unlock", "reset"]
    actor: str
    reason: str
    at: datetime


class PasswordState(Struct, kw_only=True):
    """A buyer's payment password as the admin desk sees it (never the hash)."""

    user_id: str
    set: bool
    locked: bool = False
    failed_attempts: int = 0
    locked_until: datetime | None = None
    updated_at: datetime | None = None
    actions: list[PasswordAction] = msgspec.field(default_factory=list)
    """Unlocks and resets by admins, latest first: who, when, why."""


class PasswordDeskAction(Struct, forbid_unknown_fields=True, kw_only=True):
    """Why an admin unlocks or resets a buyer's payment password (kept in the trail)."""

    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=NO_NUL)]


class RefundDecision(Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, Meta(max_length=500, pattern=NO_NUL)] | None = None


class CallbackAnswer(Struct, kw_only=True):
    """What the callback endpoint answers; the provider only looks at the status code."""

    status_code: int
    body: dict[str, Any]


class MoneyAudit(Struct, kw_only=True):
    sale_id: str
    ok: bool
    violations: list[str]
    captured_cents: int
    refunds_cents: int
    retained_cents: int
    paid_orders_cents: int
    paid_orders: int
    payments: int
    refunds_pending: int
    unsettled: int


def row_to(cls: type[Any], row: Any) -> Any:
    """Build a Struct from an asyncpg Record (extra columns ignored)."""
    fields = cls.__struct_fields__
    return cls(**{name: row[name] for name in fields if name in row.keys()})


encode = msgspec.json.encode
