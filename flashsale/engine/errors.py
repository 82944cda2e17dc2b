"""Refusals of the engine: one code table mirrored from the Lua replies.

Lua scripts answer a business refusal as a small negative integer (BullMQ's
habit); ``refusal()`` turns it into one exception class, each carrying the
stable machine-readable ``code`` that the HTTP API and the CLI show.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Reply(IntEnum):
    CREATED = 1
    REPLAYED = 2
    ALREADY_DONE = 3
    SALE_NOT_FOUND = -1
    SALE_NOT_OPEN = -2
    SALE_PAUSED = -3
    SALE_CLOSED = -4
    SOLD_OUT = -5
    LIMIT_REACHED = -6
    IP_LIMIT_REACHED = -7
    IDEMPOTENCY_MISMATCH = -8
    ORDER_NOT_FOUND = -9
    ORDER_NOT_PENDING = -10
    SALE_EXISTS = -12
    NOT_DUE = -13
    INVALID_CHANGE = -14
    SERIALS_REFUSED = -15


class EngineError(Exception):
    """Base of every refusal; ``code`` is part of the public contract."""

    code = "engine_error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code.replace("_", " ")
        self.extra = extra


class SaleNotFound(EngineError):
    code = "sale_not_found"


class SaleNotOpen(EngineError):
    code = "sale_not_open"


class SalePaused(EngineError):
    code = "sale_paused"


class SaleClosed(EngineError):
    code = "sale_closed"


class SoldOut(EngineError):
    code = "sold_out"


class LimitReached(EngineError):
    code = "limit_reached"


class IdempotencyMismatch(EngineError):
    code = "idempotency_key_reused"


class OrderNotFound(EngineError):
    code = "order_not_found"


class OrderNotPending(EngineError):
    code = "order_not_pending"


class SaleExists(EngineError):
    code = "sale_exists"


class NotDue(EngineError):
    code = "not_due"


class InvalidChange(EngineError):
    code = "validation_error"


class SerialsRefused(EngineError):
    code = "serials_conflict"


class EngineUnavailable(EngineError):
    """Redis did not answer; the outcome of the call is unknown (retry with the same key)."""

    code = "engine_unavailable"


_SIMPLE: dict[int, type[EngineError]] = {
    Reply.SALE_NOT_FOUND: SaleNotFound,
    Reply.SALE_NOT_OPEN: SaleNotOpen,
    Reply.SALE_PAUSED: SalePaused,
    Reply.SALE_CLOSED: SaleClosed,
    Reply.SOLD_OUT: SoldOut,
    Reply.ORDER_NOT_FOUND: OrderNotFound,
    Reply.SALE_EXISTS: SaleExists,
}


def refusal(reply: list[Any]) -> EngineError:
    """The exception for a refused script call ``[code, detail, ...]``."""
    code = int(reply[0])
    detail = _text(reply[1]) if len(reply) > 1 else ""
    if code in _SIMPLE:
        return _SIMPLE[code]()
    if code == Reply.LIMIT_REACHED:
        orders = [_text(order_id) for order_id in reply[2:]]
        return LimitReached(
            f"at most {detail} live orders per buyer",
            scope="user",
            limit=int(detail),
            order_ids=orders,
        )
    if code == Reply.IP_LIMIT_REACHED:
        return LimitReached(
            f"at most {detail} live orders per address", scope="ip", limit=int(detail)
        )
    if code == Reply.IDEMPOTENCY_MISMATCH:
        return IdempotencyMismatch(
            "this Idempotency-Key was used with a different request", order_id=detail
        )
    if code == Reply.ORDER_NOT_PENDING:
        return OrderNotPending(f"order is {detail}", status=detail)
    if code == Reply.NOT_DUE:
        return NotDue(f"order expires at {detail} ms", expires_ms=int(detail))
    if code == Reply.INVALID_CHANGE:
        return InvalidChange(detail)
    if code == Reply.SERIALS_REFUSED:
        return SerialsRefused(detail)
    return EngineError(f"unexpected reply {reply!r}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
