"""Errors as ``application/problem+json`` (RFC 9457), mapped in one place.

Every refusal the API gives is a ``FlashsaleError`` (``flashsale/errors.py``: the
engine's, the payment flow's, or one of the few HTTP-only ones below), which
carries its own ``code`` and ``status``, or one of Litestar's own
``HTTPException``s, which are named by their status. ``problem_for`` is the one
function that turns any exception into a status and a body with a stable
``code``. PostgreSQL out of reach answers 503 ``database_unavailable`` (Redis
out of reach is the engine's 503 ``engine_unavailable``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, Meta, Struct, UnsetType

# The engine's, the payment flow's and delivery's refusals: imported so the whole tree
# is known here.
from flashsale.chain import errors as chain_errors  # noqa: F401
from flashsale.engine import errors as engine_errors  # noqa: F401
from flashsale.errors import (
    DatabaseUnavailable,
    FlashsaleError,
    ValidationFailed,
    all_error_classes,
)
from flashsale.payments import errors as payment_errors  # noqa: F401

log = logging.getLogger("flashsale.api")

PROBLEM_JSON = "application/problem+json"


class Unauthenticated(FlashsaleError):
    code = "unauthenticated"
    status = 401
    advice = "Send `Authorization: Bearer <token>` with a valid, unexpired token."


class Forbidden(FlashsaleError):
    code = "forbidden"
    status = 403
    advice = "The token is valid but lacks the role this endpoint needs (admin)."


class RateLimited(FlashsaleError):
    code = "rate_limited"
    status = 429
    advice = "Too many requests from this address: wait `Retry-After` seconds."


class IdempotencyKeyRequired(FlashsaleError):
    """A wallet credit without an Idempotency-Key: a retry could not be told from a new one."""

    code = "idempotency_key_required"
    status = 428
    advice = (
        "Send an `Idempotency-Key` header, one value per intended credit: a retry with the "
        "same key and body is applied once."
    )


class AuditUnavailable(FlashsaleError):
    """The server runs without PostgreSQL (FLASHSALE_DATABASE_URL): nothing to audit against."""

    code = "audit_unavailable"
    status = 503
    advice = "This deployment has no database configured: run the audit where it has one."


# Litestar's own refusals, named by their HTTP status (the framework raises them).
class NotFound(FlashsaleError):
    code = "not_found"
    status = 404
    advice = "No such path: check the URL against the OpenAPI document."


class MethodNotAllowed(FlashsaleError):
    code = "method_not_allowed"
    status = 405
    advice = "Use one of the methods in the `Allow` header."


class PayloadTooLarge(FlashsaleError):
    code = "payload_too_large"
    status = 413
    advice = "The body is over the endpoint's limit: send less."


class UnsupportedMediaType(FlashsaleError):
    code = "unsupported_media_type"
    status = 415
    advice = "Send the content type the endpoint documents."


class ServiceUnavailable(FlashsaleError):
    code = "service_unavailable"
    status = 503
    advice = "The server is starting or stopping: retry after `Retry-After`."


_BY_STATUS: dict[int, type[FlashsaleError]] = {
    cls.status: cls
    for cls in (
        ValidationFailed,
        Unauthenticated,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        ServiceUnavailable,
    )
}
_BY_STATUS[400] = ValidationFailed  # Litestar's malformed-request answer

# PostgreSQL did not answer (down, restarting, pool exhausted): retry later.
PG_UNREACHABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    TimeoutError,
)
# Text PostgreSQL cannot store (U+0000, say) that slipped past validation: the input's fault.
PG_REFUSED_TEXT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


BAD_REQUEST = "bad_request"  # a 4xx of the framework's that no class names (should not happen)
# validation_error is also Litestar's answer to a request it cannot parse (400)
_ALSO_ANSWERED: dict[str, tuple[int, ...]] = {ValidationFailed.code: (400,)}


def error_classes() -> list[type[FlashsaleError]]:
    """Every refusal of the API, one class per stable code."""
    return all_error_classes()  # engine_errors and payment_errors are imported above


PROBLEM_CODES: tuple[str, ...] = tuple(sorted({c.code for c in error_classes()} | {BAD_REQUEST}))
"""Every ``code`` a problem may carry: an enum in the OpenAPI document."""


def error_reference() -> str:
    """The error-code reference (``docs/errors.md``) as Markdown, from the tree itself."""
    lines = [
        "# Error codes",
        "",
        "Every refusal is `application/problem+json` with a stable `code` (RFC 9457 plus",
        "`code`). This table is generated from the error classes (`flashsale errors`); a",
        "test keeps it equal to them.",
        "",
        "| code | HTTP status | what a client should do |",
        "|---|---|---|",
    ]
    for cls in sorted(error_classes(), key=lambda c: (c.status, c.code)):
        statuses = sorted({cls.status, *_ALSO_ANSWERED.get(cls.code, ())})
        answered = ", ".join(str(s) for s in statuses)
        lines.append(f"| `{cls.code}` | {answered} | {cls.advice} |")
    return "\n".join(lines) + "\n"


class ProblemError(Struct, kw_only=True):
    """One validation failure: where (``key``, ``source``) and what (``message``)."""

    message: str
    key: str | None = None
    source: str | None = None


class Problem(Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details plus the stable ``code`` and a few documented extras."""

    type: str
    title: str
    status: int
    detail: str
    code: Annotated[str, Meta(extra_json_schema={"extra": {"enum": list(PROBLEM_CODES)}})]
    """Stable and machine-readable: docs/errors.md says what each one asks of a client."""
    order_ids: list[str] | UnsetType = UNSET
    """limit_reached (scope user): the buyer's live orders in the sale."""
    order_id: str | UnsetType = UNSET
    """idempotency_key_reused: the order remembered under the key."""
    scope: str | UnsetType = UNSET
    """limit_reached: ``user`` or ``ip``."""
    limit: int | UnsetType = UNSET
    """limit_reached: the limit that was hit."""
    order_status: str | UnsetType = UNSET
    """order_not_pending, order_not_payable, order_not_cancellable: the order's status."""
    retry_after_s: float | UnsetType = UNSET
    """rate_limited: when to try again."""
    errors: list[ProblemError] | UnsetType = UNSET
    """validation_error: what was wrong, field by field."""
    attempts_left: int | UnsetType = UNSET
    """payment_password_wrong: wrong attempts left before the password locks."""
    locked_until: str | UnsetType = UNSET
    """payment_password_locked: when it unlocks (RFC 3339)."""
    payment_id: str | UnsetType = UNSET
    """order_not_payable after a balance debit: the payment credited back."""
    refund_status: str | UnsetType = UNSET
    """refund_already_decided: the decision already taken."""
    ticket_status: str | UnsetType = UNSET
    """ticket_already_decided: the decision already taken."""
    ticket_id: str | UnsetType = UNSET
    """refund_decided_by_ticket: the after-sales ticket that decides the refund."""


def _title(code: str) -> str:
    return code.replace("_", " ").capitalize()


def _extras(exc: FlashsaleError) -> dict[str, Any]:
    """The documented extras of a refusal (``Problem``'s optional fields), from ``extra``."""
    extra = exc.extra
    out: dict[str, Any] = {}
    if "order_ids" in extra:
        out["order_ids"] = [str(o) for o in extra["order_ids"]]
    if "order_id" in extra:
        out["order_id"] = str(extra["order_id"])
    if "scope" in extra:
        out["scope"] = str(extra["scope"])
    if "limit" in extra:
        out["limit"] = int(extra["limit"])
    if "retry_after_s" in extra:
        out["retry_after_s"] = float(extra["retry_after_s"])
    if "errors" in extra:
        out["errors"] = extra["errors"]
    if "attempts_left" in extra:
        out["attempts_left"] = int(extra["attempts_left"])
    if extra.get("locked_until") is not None:
        out["locked_until"] = extra["locked_until"].isoformat()
    if "payment_id" in extra:
        out["payment_id"] = str(extra["payment_id"])
    if extra.get("status") is not None:
        key = "refund_status" if exc.code == "refund_already_decided" else "order_status"
        out[key] = str(extra["status"])
    for key in ("order_status", "ticket_status", "ticket_id"):  # raised under their own names
        if extra.get(key) is not None:
            out[key] = str(extra[key])
    return out


def _validation_errors(extra: Any) -> list[ProblemError]:
    found: list[ProblemError] = []
    if isinstance(extra, list):
        for item in extra[:20]:
            if isinstance(item, dict):
                key = item.get("key")
                source = item.get("source")
                found.append(
                    ProblemError(
                        message=str(item.get("message", "invalid")),
                        key=None if key is None else str(key),
                        source=None if source is None else str(source),
                    )
                )
    return found


def problem_for(exc: BaseException) -> Problem:
    """The one mapping from an exception to a problem (status and stable code)."""
    if isinstance(exc, PG_REFUSED_TEXT):
        exc = ValidationFailed("a text field holds characters that cannot be stored")
    elif isinstance(exc, PG_UNREACHABLE):
        log.warning("postgresql unreachable: %r", exc)
        exc = DatabaseUnavailable("PostgreSQL did not answer; try again shortly")
    extras: dict[str, Any] = {}
    if isinstance(exc, FlashsaleError):
        code, status, detail = exc.code, exc.status, str(exc.detail)
        extras = _extras(exc)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        known = _BY_STATUS.get(status)
        code = known.code if known else (FlashsaleError.code if status >= 500 else BAD_REQUEST)
        detail = str(exc.detail)
        if isinstance(exc, ValidationException) or status == 400:
            errors = _validation_errors(exc.extra)
            if errors:
                extras["errors"] = errors
            if status == 400 and not detail:
                detail = "invalid request"
    else:
        status, code, detail = 500, "internal_error", "internal server error"
    if status >= 500 and code == "internal_error":
        log.error("unhandled error", exc_info=exc)
    return Problem(
        type=f"urn:flashsale:problem:{code}",
        title=_title(code),
        status=status,
        detail=detail,
        code=code,
        **extras,
    )


_encode = msgspec.json.Encoder().encode


def problem_response(exc: BaseException) -> Response[bytes]:
    problem = problem_for(exc)
    headers = None
    if problem.code == "rate_limited":
        headers = {"retry-after": "1"}
    elif problem.status == 503:
        headers = {"retry-after": "1"}
    elif problem.status == 405 and isinstance(exc, HTTPException):
        # RFC 9110: a 405 names the methods the resource has (the router knows them; a
        # static file answers GET and HEAD only)
        allow = (exc.headers or {}).get("allow") or "GET, HEAD"
        headers = {"allow": ", ".join(sorted(m.strip() for m in allow.split(",")))}
    return Response(
        content=_encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_bytes(exc: BaseException) -> tuple[int, bytes]:
    """Status and encoded body, for answers built once (sold-out short-circuit, ASGI layers)."""
    problem = problem_for(exc)
    return problem.status, _encode(problem)


def exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar exception handler: every error leaves as problem+json."""
    return problem_response(exc)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem answers a handler can give.

    Every handler refuses, 422, text PostgreSQL can't store anywhere in its request
    (path, query, headers, body: ``api/text.py``): always documented.
    """
    if 422 not in statuses:
        statuses = (*statuses, 422)
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=HTTPStatus(status).phrase,
            generate_examples=False,
        )
        for status in statuses
    }


__all__ = [
    "PROBLEM_JSON",
    "AuditUnavailable",
    "DatabaseUnavailable",
    "Forbidden",
    "IdempotencyKeyRequired",
    "Problem",
    "RateLimited",
    "Unauthenticated",
    "exception_handler",
    "problem_bytes",
    "problem_for",
    "problem_response",
    "problem_responses",
]
