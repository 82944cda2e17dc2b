"""Wire shapes that only the HTTP API has; the sale and order shapes are the engine's."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from msgspec import Struct

from flashsale.engine.models import Order


class PurchaseBody(Struct, forbid_unknown_fields=True):
    """The purchase body is ``{}``: who buys comes from the token, what from the path."""


class PurchaseOut(Struct, kw_only=True):
    order_id: str
    sale_id: str
    serial: int | str
    status: Literal[
        "pending_payment", "paid", "expired", "cancelled", "refund_pending", "refunded", "delivered"
    ]
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
    """Events of all sales' streams not yet acknowledged by the write-behind."""


class AuditReport(Struct, kw_only=True):
    """What ``audit_sale`` reports: ``ok`` is true exactly when ``violations`` is empty."""

    ok: bool
    violations: list[Any]
    persisted: int
    lag: int
    sale_id: str | None = None


class EchoOut(Struct, kw_only=True):
    ok: bool
