"""Refusals of the payment flow, each with its stable ``code`` and HTTP status.

The API maps every ``PaymentError`` to application/problem+json with
``status`` and ``code`` as given here (one mapping, at the edge).
"""

from __future__ import annotations

from typing import Any


class PaymentError(Exception):
    code = "payment_error"
    status = 400

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code.replace("_", " ")
        self.extra = extra


class OrderNotFound(PaymentError):
    """Also answered for another buyer's order: its existence is not disclosed."""

    code = "order_not_found"
    status = 404


class OrderNotPayable(PaymentError):
    code = "order_not_payable"
    status = 409


class OrderNotCancellable(PaymentError):
    code = "order_not_cancellable"
    status = 409


class InsufficientBalance(PaymentError):
    code = "insufficient_balance"
    status = 409


class PaymentPasswordWrong(PaymentError):
    code = "payment_password_wrong"
    status = 403


class PaymentPasswordLocked(PaymentError):
    code = "payment_password_locked"
    status = 403


class PaymentPasswordNotSet(PaymentError):
    code = "payment_password_not_set"
    status = 409


class UnknownProvider(PaymentError):
    code = "unknown_provider"
    status = 404


class ProviderUnavailable(PaymentError):
    """The provider did not answer; nothing was charged (retry later)."""

    code = "provider_unavailable"
    status = 503


class PaymentsUnavailable(PaymentError):
    """The server runs without PostgreSQL: no payments."""

    code = "payments_unavailable"
    status = 503


class RefundNotFound(PaymentError):
    code = "refund_not_found"
    status = 404


class RefundAlreadyDecided(PaymentError):
    code = "refund_already_decided"
    status = 409


class Validation(PaymentError):
    code = "validation_error"
    status = 422
