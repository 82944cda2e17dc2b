"""Refusals of the engine, and the one translation from a script's reply to them.

Lua scripts answer a business refusal as a small negative integer (BullMQ's
habit), mirrored by ``Reply``; ``raise_for(reply)`` is the only place that
turns such a reply into an exception, each class carrying the stable ``code``
and HTTP ``status`` of ``flashsale.errors``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from flashsale.engine.codec import text
from flashsale.engine.models import Order, order_from_reply
from flashsale.errors import FlashsaleError, ValidationFailed


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
    IN_DELIVERY = -16
    DELIVERED = -17
    DEADLINE_PASSED = -18
    FENCED = -19  # place-8: a swept claim's order id (engine/buckets.py)
    IP_HOLD_NEEDED = -20  # purchase-10/place-8: the IP limit is on; hold first (internal)


class SaleNotFound(FlashsaleError):
    code = "sale_not_found"
    status = 404
    advice = "Check the sale id; sales are never deleted, so it never existed here."


class SaleNotOpen(FlashsaleError):
    code = "sale_not_open"
    status = 409
    advice = "The sale has not started: retry after its `start_at`."


class SalePaused(FlashsaleError):
    code = "sale_paused"
    status = 409
    advice = "Operators paused the sale: poll the sale and retry once it is `open`."


class SaleClosed(FlashsaleError):
    code = "sale_closed"
    status = 409
    advice = "The sale is over for good: stop retrying."


class SoldOut(FlashsaleError):
    code = "sold_out"
    status = 409
    advice = (
        "Nothing is available now; serials of unpaid orders return to the pool when they "
        "expire, so a later retry may still succeed while the sale is open."
    )


class LimitReached(FlashsaleError):
    code = "limit_reached"
    status = 409
    advice = (
        "The buyer (`scope: user`, with the live `order_ids`) or the address (`scope: ip`) "
        "holds as many live orders as the sale allows: pay or cancel one of them."
    )


class IdempotencyMismatch(FlashsaleError):
    code = "idempotency_key_reused"
    status = 422
    advice = "This Idempotency-Key went with another request: use a fresh key per request."


class OrderNotFound(FlashsaleError):
    """Also answered for another buyer's order: its existence is not disclosed."""

    code = "order_not_found"
    status = 404
    advice = "Check the order id (and that the token is the buyer's)."


class OrderNotPending(FlashsaleError):
    code = "order_not_pending"
    status = 409
    advice = "The order moved on (see `order_status`): read it back instead of retrying."


class OrderInDelivery(FlashsaleError):
    code = "order_in_delivery"
    status = 409
    advice = (
        "The order's token is being minted: it can no longer be cancelled. Wait for it to be "
        "delivered, then open an after-sales ticket if something is wrong."
    )


class OrderDelivered(FlashsaleError):
    code = "order_delivered"
    status = 409
    advice = "The order was delivered: it cannot be cancelled; open an after-sales ticket."


class SaleExists(FlashsaleError):
    code = "sale_exists"
    status = 409
    advice = "A sale with this id exists: choose another id, or read the existing sale."


class NotDue(FlashsaleError):
    """Internal: an expiry asked before the order's deadline (the timers retry later)."""

    code = "not_due"
    status = 409
    advice = "Internal to the timers; never answered to a client."


class SerialsRefused(FlashsaleError):
    code = "serials_conflict"
    status = 409
    advice = "The serials overlap or repeat the sale's own: send serials it does not have."


class EngineUnavailable(FlashsaleError):
    """The call was never sent to Redis, or Redis refused it before the script wrote
    anything: nothing was done."""

    code = "engine_unavailable"
    status = 503
    advice = "Nothing happened: retry after `Retry-After` (with the same Idempotency-Key, if any)."


class OutcomeUnknown(FlashsaleError):
    """The call reached Redis but its answer did not come back (deadline passed,
    connection broke after sending, fail-over): it may or may not have taken effect."""

    code = "outcome_unknown"
    status = 503
    advice = (
        "Retry with the same Idempotency-Key: it returns the order if it was made "
        "(without a key, read your orders before buying again)."
    )


_SIMPLE: dict[int, type[FlashsaleError]] = {
    Reply.SALE_NOT_FOUND: SaleNotFound,
    Reply.SALE_NOT_OPEN: SaleNotOpen,
    Reply.SALE_PAUSED: SalePaused,
    Reply.SALE_CLOSED: SaleClosed,
    Reply.SOLD_OUT: SoldOut,
    Reply.ORDER_NOT_FOUND: OrderNotFound,
    Reply.SALE_EXISTS: SaleExists,
}


def refusal(reply: list[Any]) -> FlashsaleError:
    """The exception for a refused script call ``[code, detail, ...]``."""
    code = int(reply[0])
    detail = text(reply[1]) if len(reply) > 1 else ""
    if code in _SIMPLE:
        return _SIMPLE[code]()
    if code == Reply.LIMIT_REACHED:
        return LimitReached(
            f"at most {detail} live orders per buyer",
            scope="user",
            limit=int(detail),
            order_ids=[text(order_id) for order_id in reply[2:]],
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
        # {-10, status, order fields...}: the order as it is, for callers that act on it
        order = order_from_reply(reply[2:]) if len(reply) > 2 else None
        return OrderNotPending(f"order is {detail}", status=detail, order=order)
    if code in (Reply.IN_DELIVERY, Reply.DELIVERED):
        refused = cancel_refused(detail)
        assert refused is not None, reply
        return refused
    if code == Reply.DEADLINE_PASSED:
        return EngineUnavailable("the call reached Redis after its deadline: nothing was done")
    if code == Reply.FENCED:
        return EngineUnavailable("the purchase took too long and was given up: nothing was done")
    if code == Reply.NOT_DUE:
        return NotDue(f"order is due at {detail} ms", due_ms=int(detail))
    if code == Reply.INVALID_CHANGE:
        return ValidationFailed(detail)
    if code == Reply.SERIALS_REFUSED:
        return SerialsRefused(detail)
    return FlashsaleError(f"unexpected reply {reply!r}")


def cancel_refused(status: str) -> FlashsaleError | None:
    """Why an order in ``status`` cannot be cancelled because its delivery started (the
    scripts' -16/-17), or None."""
    if status == "delivering":
        return OrderInDelivery("the order is being delivered", status=status)
    if status in ("delivered", "completed"):
        return OrderDelivered(f"the order is {status}", status=status)
    return None


def order_of(reply: list[Any]) -> tuple[Order, bool]:
    """The order of a transition's reply and whether it was a replay; raises a refusal."""
    code = int(reply[0])
    if code < 0:
        raise refusal(reply)
    return order_from_reply(reply[1:]), code == Reply.ALREADY_DONE
