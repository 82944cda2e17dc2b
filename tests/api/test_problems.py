"""Every stable code maps to its status in the one mapping function."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from flashsale.api.problems import (
    AuditUnavailable,
    Forbidden,
    Problem,
    RateLimited,
    Unauthenticated,
    problem_for,
)
from flashsale.engine import errors
from flashsale.errors import ValidationFailed
from flashsale.payments import errors as pay

CASES: list[tuple[BaseException, int, str]] = [
    (errors.SoldOut(), 409, "sold_out"),
    (errors.LimitReached("x", scope="user", limit=1, order_ids=["s.1"]), 409, "limit_reached"),
    (errors.SaleNotOpen(), 409, "sale_not_open"),
    (errors.SalePaused(), 409, "sale_paused"),
    (errors.SaleClosed(), 409, "sale_closed"),
    (errors.OrderNotPending("x", status="paid"), 409, "order_not_pending"),
    (errors.SaleExists(), 409, "sale_exists"),
    (errors.SerialsRefused("overlap"), 409, "serials_conflict"),
    (errors.SaleNotFound(), 404, "sale_not_found"),
    (errors.OrderNotFound(), 404, "order_not_found"),
    (errors.IdempotencyMismatch("x", order_id="s.1"), 422, "idempotency_key_reused"),
    (ValidationFailed("end before start"), 422, "validation_error"),
    (errors.EngineUnavailable("down"), 503, "engine_unavailable"),
    (RateLimited(), 429, "rate_limited"),
    (Unauthenticated(), 401, "unauthenticated"),
    (Forbidden(), 403, "forbidden"),
    (AuditUnavailable(), 503, "audit_unavailable"),
    (pay.OrderNotPayable("x", status="expired"), 409, "order_not_payable"),
    (pay.InsufficientBalance(), 409, "insufficient_balance"),
    (pay.PaymentPasswordWrong("x", attempts_left=2), 403, "payment_password_wrong"),
    (pay.PaymentPasswordLocked(), 403, "payment_password_locked"),
    (pay.PaymentPasswordNotSet(), 409, "payment_password_not_set"),
    (pay.RefundAlreadyDecided("x", status="rejected"), 409, "refund_already_decided"),
    (pay.RefundNotFound(), 404, "refund_not_found"),
    (pay.PaymentsUnavailable(), 503, "payments_unavailable"),
    (ConnectionRefusedError("pg down"), 503, "database_unavailable"),
    (asyncpg.exceptions.CharacterNotInRepertoireError("0x00"), 422, "validation_error"),
    (ValidationException("bad"), 400, "validation_error"),
    (NotFoundException(), 404, "not_found"),
    (MethodNotAllowedException(), 405, "method_not_allowed"),
    (RequestEntityTooLarge(), 413, "payload_too_large"),
    (HTTPException(status_code=500), 500, "internal_error"),
    (RuntimeError("boom"), 500, "internal_error"),
]


@pytest.mark.parametrize(("exc", "status", "code"), CASES, ids=[c[2] + str(c[1]) for c in CASES])
def test_mapping(exc: BaseException, status: int, code: str) -> None:
    problem = problem_for(exc)
    assert (problem.status, problem.code) == (status, code)
    assert problem.type.endswith(code) and problem.title and problem.detail
    decoded = msgspec.json.decode(msgspec.json.encode(problem), type=Problem)
    assert decoded == problem


def test_extras() -> None:
    p = problem_for(errors.LimitReached("x", scope="user", limit=2, order_ids=["s.a", "s.b"]))
    assert (p.scope, p.limit, p.order_ids) == ("user", 2, ["s.a", "s.b"])
    assert problem_for(errors.IdempotencyMismatch("x", order_id="s.1")).order_id == "s.1"
    assert problem_for(errors.OrderNotPending("x", status="paid")).order_status == "paid"
    internal = problem_for(RuntimeError("secret detail"))
    assert "secret" not in internal.detail  # internals never leak
    assert problem_for(pay.PaymentPasswordWrong("x", attempts_left=2)).attempts_left == 2
    decided = problem_for(pay.RefundAlreadyDecided("x", status="rejected"))
    assert decided.refund_status == "rejected" and decided.order_status is msgspec.UNSET
    assert problem_for(pay.OrderNotPayable("x", status="expired")).order_status == "expired"


def test_each_code_has_one_class_with_a_status_and_advice() -> None:
    from flashsale.api.problems import error_classes

    classes = error_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "a code named by two classes"
    for cls in classes:
        assert 400 <= cls.status < 600 and cls.advice, cls
        assert problem_for(cls()).status == cls.status  # the one mapping uses the class


def test_the_error_reference_in_docs_is_current() -> None:
    from pathlib import Path

    from flashsale.api.problems import error_reference

    docs = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
    assert docs.read_text() == error_reference(), "run: flashsale errors > docs/errors.md"


async def test_the_openapi_document_lists_every_code(client: Any) -> None:
    from flashsale.api.problems import PROBLEM_CODES

    schema = (await client.get("/schema/openapi.json")).json()
    code = schema["components"]["schemas"]["Problem"]["properties"]["code"]
    assert code["enum"] == list(PROBLEM_CODES)
