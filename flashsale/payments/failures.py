"""Failure classes of the payment flow: which ones page an operator, which are only logged.

Every failure has one class and a severity:

- ``page``: money may be wrong or stuck; a human must look now. Counted in
  ``flashsale_payment_alerts_total{class=...}``, logged at ERROR and stored in
  the ``payment_alerts`` table.
- ``alert``: expected under faults, but a rising rate is an incident. Counted
  and stored like ``page``, logged at WARNING; page on the rate, not on one.
- ``log``: part of normal operation (a buyer typed a wrong password, a lost
  callback was recovered). One INFO line, no counter.

Each report is one structured log line: ``payment_failure`` followed by a JSON
object with the class, severity and the ids involved. ``TABLE`` below is the
source of the README table (``markdown_table()``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from prometheus_client import Counter

log = logging.getLogger("flashsale.payments")

Severity = Literal["page", "alert", "log"]


class Failure(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    STALE_CALLBACK = "stale_callback"
    NOTICE_CONFLICT = "notice_conflict"
    MALFORMED_CALLBACK = "malformed_callback"
    UNKNOWN_ORDER = "unknown_order"
    ORDER_MISMATCH = "order_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    DUPLICATE_PAYMENT = "duplicate_payment"
    LATE_PAYMENT = "late_payment"
    PAID_AFTER_CANCEL = "paid_after_cancel"
    PROVIDER_UNREACHABLE = "provider_unreachable"
    PROVIDER_PROTOCOL_ERROR = "provider_protocol_error"
    PROVIDER_REJECTED = "provider_rejected"
    EXPIRED_WITHOUT_ANSWER = "expired_without_answer"
    CONFIRM_DEFERRED = "confirm_deferred"
    CANCEL_REPAIRED = "cancel_repaired"
    REFUND_FAILED = "refund_failed"
    LOST_CALLBACK_RECOVERED = "lost_callback_recovered"
    DUPLICATE_CALLBACK = "duplicate_callback"
    STALE_NOTICE = "stale_notice"
    BALANCE_REVERSED = "balance_reversed"
    PASSWORD_WRONG = "payment_password_wrong"
    PASSWORD_LOCKED = "payment_password_locked"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    ORDER_NOT_PAYABLE = "order_not_payable"


@dataclass(frozen=True, slots=True)
class FailureInfo:
    severity: Severity
    meaning: str
    action: str


TABLE: dict[Failure, FailureInfo] = {
    Failure.AMOUNT_MISMATCH: FailureInfo(
        "page",
        "A provider reports a paid amount or currency other than the attempt's. The money "
        "is not kept: a refund for review is opened and the order is not confirmed.",
        "Compare the trade at the provider with the payment row; approve the refund, then "
        "find out who changed the amount (misconfiguration or tampering).",
    ),
    Failure.ORDER_MISMATCH: FailureInfo(
        "page",
        "A correctly signed callback names another order or trade than the payment it refers "
        "to. Nothing changes.",
        "Treat as a provider bug or a leaked key; check the trade at the provider by hand.",
    ),
    Failure.UNKNOWN_ORDER: FailureInfo(
        "page",
        "A signed callback for a payment we never started, or a paid payment whose order "
        "no longer exists in Redis. Acknowledged so the provider stops retrying; stored in "
        "payment_alerts with the whole notice.",
        "Find the trade at the provider; refund it there by hand if it holds money.",
    ),
    Failure.PROVIDER_PROTOCOL_ERROR: FailureInfo(
        "page",
        "The provider answered outside its protocol (unexpected status, undecodable body).",
        "Check the provider's status page and our client version; nothing retries it away.",
    ),
    Failure.EXPIRED_WITHOUT_ANSWER: FailureInfo(
        "page",
        "An order with a payment in flight was expired after the grace period without the "
        "provider answering. A payment that still arrives becomes a late_payment refund.",
        "Check provider reachability; watch for late_payment refunds of these orders.",
    ),
    Failure.REFUND_FAILED: FailureInfo(
        "page",
        "An approved refund was refused by the provider (trade_not_paid, amount exceeded).",
        "Look at the trade at the provider; settle the refund by hand, then record it.",
    ),
    Failure.BAD_SIGNATURE: FailureInfo(
        "alert",
        "A callback whose signature is missing, malformed or wrong: 401, nothing changes.",
        "A burst means a forged-callback attempt or a rotated secret out of step "
        "(FLASHSALE_PAYSIM_SECRET): compare the secret on both sides.",
    ),
    Failure.STALE_CALLBACK: FailureInfo(
        "alert",
        "A correctly signed callback more than 300 s off our clock: 401.",
        "Check NTP on our hosts; the provider retries, so nothing is lost.",
    ),
    Failure.NOTICE_CONFLICT: FailureInfo(
        "alert",
        "A notice id delivered again with another payment or status than its first delivery: "
        "200, nothing changes (the first facts stand).",
        "A provider bug or a leaked key: check the trade at the provider by hand.",
    ),
    Failure.DUPLICATE_PAYMENT: FailureInfo(
        "alert",
        "An order was paid by a second attempt; the extra payment waits as a refund for review.",
        "Approve the refund in GET /v1/admin/refunds?status=pending.",
    ),
    Failure.LATE_PAYMENT: FailureInfo(
        "alert",
        "A payment arrived for an order that had expired; the serial may be resold. The "
        "money waits as a refund for review.",
        "Approve the refund; a rate rising means the payment timeout is too short.",
    ),
    Failure.PAID_AFTER_CANCEL: FailureInfo(
        "alert",
        "A payment arrived for a cancelled order (buyer, ops, price change, delisting); "
        "the money waits as a refund for review.",
        "Approve the refund.",
    ),
    Failure.PROVIDER_UNREACHABLE: FailureInfo(
        "alert",
        "The provider did not answer a create, query, close or refund; retried with back-off.",
        "Page when the rate stays up for minutes: expiries of orders with payments in flight "
        "are held back meanwhile.",
    ),
    Failure.PROVIDER_REJECTED: FailureInfo(
        "alert",
        "The provider refused a request we thought valid (create or close).",
        "Read the code in the log line; usually configuration.",
    ),
    Failure.CONFIRM_DEFERRED: FailureInfo(
        "alert",
        "A payment succeeded in PostgreSQL but Redis did not answer the order confirmation; "
        "the timers repair it (internal lost order).",
        "Check Redis; nothing to do for the orders themselves.",
    ),
    Failure.CANCEL_REPAIRED: FailureInfo(
        "alert",
        "A paid order's cancellation was cut in two by a crash (Redis moved, no refund row, "
        "or the other way round); the timers finished it: the refund waits for review.",
        "Approve or reject the refund as usual; a burst means processes are being killed.",
    ),
    Failure.MALFORMED_CALLBACK: FailureInfo(
        "alert",
        "A correctly signed callback whose body does not parse: 400, the provider retries.",
        "Provider protocol change: check the provider's changelog.",
    ),
    Failure.LOST_CALLBACK_RECOVERED: FailureInfo(
        "log",
        "A payment was found succeeded by the active query, its callback lost or late.",
        "Nothing; a large share means the provider's callbacks do not reach us.",
    ),
    Failure.DUPLICATE_CALLBACK: FailureInfo(
        "log",
        "A genuine callback delivered again (provider retry or duplicate): 200, nothing changes.",
        "Nothing.",
    ),
    Failure.STALE_NOTICE: FailureInfo(
        "log",
        "An out-of-order pending notice after the payment succeeded: ignored, 200.",
        "Nothing.",
    ),
    Failure.BALANCE_REVERSED: FailureInfo(
        "log",
        "A balance debit whose order could not be confirmed (expired or paid meanwhile) was "
        "credited back in the same flow.",
        "Nothing.",
    ),
    Failure.PASSWORD_WRONG: FailureInfo(
        "log", "A buyer gave a wrong payment password.", "Nothing."
    ),
    Failure.PASSWORD_LOCKED: FailureInfo(
        "log",
        "A buyer's payment password is locked after too many wrong attempts.",
        "Nothing; many at once may be credential stuffing.",
    ),
    Failure.INSUFFICIENT_BALANCE: FailureInfo(
        "log", "A balance payment larger than the wallet: 409.", "Nothing."
    ),
    Failure.ORDER_NOT_PAYABLE: FailureInfo(
        "log",
        "A payment for an order that is not pending (expired, cancelled, paid, price changed).",
        "Nothing.",
    ),
}

ALERTS = Counter(
    "flashsale_payment_alerts_total",
    "Payment failures of an alerting class (severity page or alert)",
    ["class"],
)

AlertSink = Callable[[Failure, Severity, dict[str, Any]], Awaitable[None]]


def severity_of(failure: Failure) -> Severity:
    return TABLE[failure].severity


def report(failure: Failure, **fields: Any) -> dict[str, Any]:
    """Count (when alerting) and log one structured line; returns the logged record."""
    return report_in("payment_failure", failure.value, TABLE[failure], ALERTS, log, fields)


def report_in(
    kind: str,
    failure: str,
    info: FailureInfo,
    alerts: Counter,
    logger: logging.Logger,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The one shape of a failure report (payments' and delivery's): ``<kind> {json}`` at
    the severity's level, alerting classes counted in ``alerts``."""
    record: dict[str, Any] = {"class": failure, "severity": info.severity, **fields}
    line = f"{kind} " + json.dumps(record, default=str, sort_keys=True)
    if info.severity == "log":
        logger.info(line)
    else:
        alerts.labels(failure).inc()
        (logger.error if info.severity == "page" else logger.warning)(line)
    return record


def markdown_table() -> str:
    rows = ["| class | severity | what happened | what ops should do |", "|---|---|---|---|"]
    order = {"page": 0, "alert": 1, "log": 2}
    for failure, info in sorted(TABLE.items(), key=lambda kv: (order[kv[1].severity], kv[0])):
        rows.append(f"| `{failure.value}` | {info.severity} | {info.meaning} | {info.action} |")
    return "\n".join(rows)
