"""Refusals of the payment flow, each with its stable ``code`` and HTTP status.

They belong to the one error tree of ``flashsale.errors``; the API maps every
one of them to application/problem+json from its class attributes alone.
Codes the engine already has (``order_not_found``) and ``validation_error`` are
the engine's and the tree's own classes, re-used here, never copied.
"""

from __future__ import annotations

from flashsale.engine.errors import OrderNotFound
from flashsale.errors import FlashsaleError, ValidationFailed

__all__ = [
    "InsufficientBalance",
    "InsufficientCoins",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrderNotPayable",
    "PaymentDeferred",
    "PaymentPasswordLocked",
    "PaymentPasswordNotSet",
    "PaymentPasswordWrong",
    "PaymentsUnavailable",
    "ProviderUnavailable",
    "RefundAlreadyDecided",
    "RefundNotFound",
    "UnknownProvider",
    "ValidationFailed",
]


class InsufficientCoins(FlashsaleError):
    code = "insufficient_coins"
    status = 409
    advice = "The buyer holds fewer coins than `coins_cents`: ask for fewer; nothing was bought."


class OrderNotPayable(FlashsaleError):
    code = "order_not_payable"
    status = 409
    advice = (
        "The order is not pending any more, its deadline passed, or its item changed "
        "(`order_status` says which): read the order back; no money was kept."
    )


class OrderNotCancellable(FlashsaleError):
    code = "order_not_cancellable"
    status = 409
    advice = (
        "The order cannot be cancelled in its status, or a payment is being recorded: "
        "read it back and retry in a moment if it is still pending."
    )


class InsufficientBalance(FlashsaleError):
    code = "insufficient_balance"
    status = 409
    advice = "The wallet holds less than the amount: pay through a provider instead."


class PaymentPasswordWrong(FlashsaleError):
    code = "payment_password_wrong"
    status = 403
    advice = "Ask the buyer again; `attempts_left` wrong attempts remain before it locks."


class PaymentPasswordLocked(FlashsaleError):
    code = "payment_password_locked"
    status = 403
    advice = "Too many wrong passwords: wait until `locked_until`, or pay through a provider."


class PaymentPasswordNotSet(FlashsaleError):
    code = "payment_password_not_set"
    status = 409
    advice = "Set one with PUT /v1/me/payment-password first."


class UnknownProvider(FlashsaleError):
    code = "unknown_provider"
    status = 404
    advice = "Use a provider the server is configured with (`sim` in the demo)."


class ProviderUnavailable(FlashsaleError):
    """The provider did not answer; nothing was charged (retry later)."""

    code = "provider_unavailable"
    status = 503
    advice = "Nothing was charged: retry after `Retry-After`."


class PaymentDeferred(FlashsaleError):
    """The money was taken but the order could not be confirmed yet (Redis did not answer)."""

    code = "payment_deferred"
    status = 503
    advice = (
        "Do not pay again: the payment (`payment_id`) is confirmed or credited back within "
        "seconds; read the order back."
    )


class PaymentsUnavailable(FlashsaleError):
    """The server runs without PostgreSQL: no payments."""

    code = "payments_unavailable"
    status = 503
    advice = "This deployment takes no payments (no database configured): ask its operators."


class RefundNotFound(FlashsaleError):
    code = "refund_not_found"
    status = 404
    advice = "Check the refund id."


class RefundAlreadyDecided(FlashsaleError):
    code = "refund_already_decided"
    status = 409
    advice = "Another operator decided otherwise first (`refund_status`): read it back."


class RefundDecidedByTicket(FlashsaleError):
    """The refund carries an approved after-sales ticket's decision: the ticket decides it."""

    code = "refund_decided_by_ticket"
    status = 409
    advice = (
        "An approved after-sales ticket (`ticket_id`) opened this refund; the ticket is "
        "the decision. Approve the ticket again to finish a refund an outage interrupted."
    )
