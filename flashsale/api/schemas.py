"""Wire shapes that only the HTTP API has; the sale and order shapes are the engine's."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from flashsale.chain.views import ChainInfo, Delivery
from flashsale.engine.models import Order, Sale
from flashsale.engine.statuses import OrderStatus
from flashsale.payments.models import MoneyAudit, Payment
from flashsale.store.audit import RedisCounts, StreamState, Violation


class PurchaseBody(Struct, forbid_unknown_fields=True):
    """The purchase body is ``{}``: who buys comes from the token, what from the path."""


class PurchaseOut(Struct, kw_only=True):
    order_id: str
    sale_id: str
    serial: int | str
    status: OrderStatus
    expires_at: datetime
    price_cents: int
    currency: str

    @classmethod
    def of(cls, order: Order) -> PurchaseOut:
        return cls(
            order_id=order.order_id,
            sale_id=order.sale_id,
            serial=order.serial,
            status=order.status,
            expires_at=order.expires_at,
            price_cents=order.price_cents,
            currency=order.currency,
        )


class Check(Struct, kw_only=True):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class Health(Struct, kw_only=True):
    status: Literal["ok", "degraded"]
    redis: Check
    postgres: Check | None
    """None when FLASHSALE_DATABASE_URL is not set."""
    write_behind_lag: int | None
    """Entries of all sales' streams not yet persisted by the write-behind (pending or
    never delivered); None when Redis did not answer in time."""


class OrderOut(Order, kw_only=True):
    """An order read back: the engine's order, its payment attempts (empty without
    PostgreSQL) and, once paid, its delivery on chain."""

    payments: list[Payment] = msgspec.field(default_factory=list)
    delivery: Delivery | UnsetType = UNSET
    """Present on every paid order (with PostgreSQL): the token's way to the buyer."""

    @classmethod
    def of(
        cls, order: Order, payments: list[Payment], delivery: Delivery | UnsetType = UNSET
    ) -> OrderOut:
        fields = {name: getattr(order, name) for name in order.__struct_fields__}
        return cls(**fields, payments=payments, delivery=delivery)


class SaleOut(Sale, kw_only=True):
    """A sale read back, with its contract once deployed."""

    chain: ChainInfo | UnsetType = UNSET
    """The sale's ERC-721 contract, once deployed (before its first delivery)."""

    @classmethod
    def of(cls, sale: Sale, chain: ChainInfo | None) -> SaleOut:
        fields = {name: getattr(sale, name) for name in sale.__struct_fields__}
        return cls(**fields, chain=UNSET if chain is None else chain)


class AuditReport(Struct, kw_only=True):
    """The store's audit of a sale (Redis against PostgreSQL) joined with the money audit.

    ``ok`` is true exactly when ``violations`` is empty: the store's violations (each
    with its stable ``code``) and the money audit's, as code ``money_mismatch``.
    ``persisted`` counts the sale's orders in PostgreSQL in any status; ``lag`` the
    orders Redis acknowledged that PostgreSQL does not have yet (or has at an older
    state).
    """

    ok: bool
    violations: list[Violation]
    persisted: int
    lag: int
    sale_id: str
    drained: bool
    """The write-behind had nothing left to write for this sale."""
    deep: bool
    """Every order compared (false: ``?quick=true``, counters and aggregates only)."""
    checked_orders: int
    redis: RedisCounts
    postgres: dict[str, int]
    """The sale's orders in PostgreSQL by status."""
    stream: StreamState
    money: MoneyAudit
    duration_ms: int


class EchoOut(Struct, kw_only=True):
    ok: bool
