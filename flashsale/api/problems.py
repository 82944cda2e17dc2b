"""Errors as ``application/problem+json`` (RFC 9457), mapped in one place.

Every refusal the API gives is an ``EngineError`` (the engine's, or one of the
few HTTP-only ones below), a ``PaymentError`` of the payment flow (which carries
its own status), or one of Litestar's own ``HTTPException``s; ``problem_for`` is
the one function that turns any of them into a status and a body with a stable
``code``. PostgreSQL out of reach answers 503 ``database_unavailable`` (Redis
out of reach is the engine's 503 ``engine_unavailable``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, Struct, UnsetType

from flashsale.engine.errors import EngineError
from flashsale.payments.errors import PaymentError

log = logging.getLogger("flashsale.api")

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """Refusals only the HTTP layer gives; shaped like the engine's ``EngineError``."""

    code = "api_error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code.replace("_", " ")
        self.extra = extra


class Unauthenticated(ApiError):
    code = "unauthenticated"


class Forbidden(ApiError):
    code = "forbidden"


class RateLimited(ApiError):
    code = "rate_limited"


class AuditUnavailable(ApiError):
    """The server runs without PostgreSQL (FLASHSALE_DATABASE_URL): nothing to audit against."""

    code = "audit_unavailable"


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


# Status of each stable code. Codes not listed answer 409 when they are business
# refusals of the engine (a conflict with the current state) — see problem_for.
STATUS_BY_CODE: dict[str, int] = {
    "sold_out": 409,
    "limit_reached": 409,
    "sale_not_open": 409,
    "sale_paused": 409,
    "sale_closed": 409,
    "order_not_pending": 409,
    "sale_exists": 409,
    "serials_conflict": 409,
    "not_due": 409,
    "sale_not_found": 404,
    "order_not_found": 404,
    "not_found": 404,
    "idempotency_key_reused": 422,
    "validation_error": 422,
    "rate_limited": 429,
    "unauthenticated": 401,
    "forbidden": 403,
    "engine_unavailable": 503,
    "audit_unavailable": 503,
    "database_unavailable": 503,
}

# Litestar's own exceptions, by HTTP status.
CODE_BY_STATUS: dict[int, str] = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
}


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
    code: str
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


def _title(code: str) -> str:
    return code.replace("_", " ").capitalize()


def _engine_extras(exc: Exception) -> dict[str, Any]:
    extra: dict[str, Any] = getattr(exc, "extra", {})
    out: dict[str, Any] = {}
    if "order_ids" in extra:
        out["order_ids"] = [str(o) for o in extra["order_ids"]]
    if "order_id" in extra:
        out["order_id"] = str(extra["order_id"])
    if "scope" in extra:
        out["scope"] = str(extra["scope"])
    if "limit" in extra:
        out["limit"] = int(extra["limit"])
    if "status" in extra:
        out["order_status"] = str(extra["status"])
    if "retry_after_s" in extra:
        out["retry_after_s"] = float(extra["retry_after_s"])
    if "errors" in extra:
        out["errors"] = extra["errors"]
    return out


def _payment_extras(exc: PaymentError) -> dict[str, Any]:
    extra = exc.extra
    out: dict[str, Any] = {}
    if "attempts_left" in extra:
        out["attempts_left"] = int(extra["attempts_left"])
    if extra.get("locked_until") is not None:
        out["locked_until"] = extra["locked_until"].isoformat()
    if "payment_id" in extra:
        out["payment_id"] = str(extra["payment_id"])
    if extra.get("status") is not None:
        key = "refund_status" if exc.code == "refund_already_decided" else "order_status"
        out[key] = str(extra["status"])
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
    if isinstance(exc, EngineError | ApiError):
        code = str(exc.code)
        status = STATUS_BY_CODE.get(code, 409 if code != "engine_error" else 500)
        detail = str(exc.detail)
        extras = _engine_extras(exc)
    elif isinstance(exc, PaymentError):
        code, status, detail = exc.code, exc.status, exc.detail
        extras = _payment_extras(exc)
    elif isinstance(exc, PG_REFUSED_TEXT):
        code, status, extras = "validation_error", 422, {}
        detail = "a text field holds characters that cannot be stored"
    elif isinstance(exc, PG_UNREACHABLE):
        code, status, extras = "database_unavailable", 503, {}
        detail = "PostgreSQL did not answer; try again shortly"
        log.warning("postgresql unreachable: %r", exc)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        code = CODE_BY_STATUS.get(status, "internal_error" if status >= 500 else "bad_request")
        detail = str(exc.detail)
        extras = {}
        if isinstance(exc, ValidationException) or status == 400:
            errors = _validation_errors(exc.extra)
            if errors:
                extras["errors"] = errors
            if status == 400 and not detail:
                detail = "invalid request"
    else:
        status, code, detail, extras = 500, "internal_error", "internal server error", {}
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
    """OpenAPI documentation of the problem answers a handler can give."""
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
    "ApiError",
    "AuditUnavailable",
    "Forbidden",
    "Problem",
    "RateLimited",
    "Unauthenticated",
    "exception_handler",
    "problem_bytes",
    "problem_for",
    "problem_response",
    "problem_responses",
]
