"""Transitional: the refund transitions are methods of the engine now.

Kept only until the payment flow calls ``Engine.request_refund``, ``refund``,
``reject_refund`` and ``pending_order_ids`` directly (removed in the same change).
"""

from __future__ import annotations

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order


async def request_refund(
    engine: Engine, order_id: str, *, user_id: str | None, reason: str
) -> tuple[Order, bool]:
    return await engine.request_refund(order_id, user_id=user_id, reason=reason)


async def refund(engine: Engine, order_id: str, *, reason: str) -> tuple[Order, bool]:
    return await engine.refund(order_id, reason=reason)


async def reject_refund(engine: Engine, order_id: str, *, reason: str) -> tuple[Order, bool]:
    return await engine.reject_refund(order_id, reason=reason)


async def pending_order_ids(engine: Engine, sale_id: str, *, limit: int = 10_000) -> list[str]:
    return await engine.pending_order_ids(sale_id, limit=limit)
