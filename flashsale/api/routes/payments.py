"""Payments over HTTP: attempts, provider callbacks, wallet, payment password, refund review.

The worker's PaymentService is built in the API's lifespan (api/plugin.py) on
the shared engine and asyncpg pool, and reached through
``AppState.payment_service``: 503 ``payments_unavailable`` when the server runs
without PostgreSQL. Refusals of the payment flow (``flashsale.errors`` classes) carry their
own status and stable code; ``api/problems.py`` maps them like every other error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, HeaderParameter, JSONBody, QueryParameter
from msgspec import UNSET, UnsetType

from flashsale.api.auth import principal_of, require_admin, require_user
from flashsale.api.problems import (
    PROBLEM_JSON,
    IdempotencyKeyRequired,
    Problem,
    problem_responses,
)
from flashsale.api.routes import review
from flashsale.api.state import AppState
from flashsale.api.tokens import MAX_USER_ID
from flashsale.engine.models import ORDER_ID
from flashsale.errors import ValidationFailed
from flashsale.payments import errors
from flashsale.payments.models import (
    PasswordSet,
    Payment,
    PaymentCreate,
    Refund,
    RefundDecision,
    RefundStatus,
    Wallet,
    WalletCredit,
)
from flashsale.payments.refunds import Refunds
from flashsale.payments.service import PaymentService

REFUND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
CALLBACK_MAX_BYTES = 16 * 1024
_encode = msgspec.json.Encoder().encode


class CallbackAck(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a provider gets back; it only looks at the status (200: stop retrying)."""

    result: str | UnsetType = UNSET
    """The notice's outcome (kept, refund, duplicate, ...)."""


def payment_service(request: Request[Any, Any, Any]) -> PaymentService:
    state: AppState = request.app.state["app_state"]
    return state.payment_service(request.scope)


def _order_id(order_id: str) -> str:
    if not ORDER_ID.match(order_id):
        raise errors.OrderNotFound()
    return order_id


def _refund_id(refund_id: str) -> str:
    if not REFUND_ID.match(refund_id):
        raise errors.RefundNotFound()
    return refund_id


def checked_user_id(user_id: str) -> str:
    """Any token ``sub`` (1 to 128 characters), but no NUL: PostgreSQL text cannot hold it."""
    if not user_id or len(user_id) > MAX_USER_ID or "\x00" in user_id:
        raise ValidationFailed("user_id must be 1 to 128 characters, without NUL")
    return user_id


_CALLBACK_DETAIL = {
    400: "the notice does not parse",
    401: "bad, stale or replayed signature",
    404: "no such payment provider",
    503: "the notice could not be recorded; deliver it again",
}


class PaymentsController(Controller):
    path = "/v1"
    tags = ["payments"]  # noqa: RUF012

    @post(
        "/orders/{order_id:str}/payments",
        guards=[require_user],
        security=BEARER,
        status_code=201,
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
        summary="Pay for an order: through a provider (pending) or from the wallet (paid now)",
    )
    async def start_payment(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        data: JSONBody[PaymentCreate],
    ) -> Payment:
        principal = principal_of(request)
        return await payment_service(request).start_payment(
            _order_id(order_id), principal.user_id, data
        )

    @get(
        "/orders/{order_id:str}/payments",
        guards=[require_user],
        security=BEARER,
        responses=problem_responses(401, 404, 503),
        summary="The payment attempts of an order (its buyer or an admin)",
    )
    async def order_payments(
        self, request: Request[Any, Any, Any], order_id: FromPath[str]
    ) -> list[Payment]:
        principal = principal_of(request)
        service = payment_service(request)
        order = await service.engine.get_order(_order_id(order_id))
        if order is None or (not principal.admin and order.user_id != principal.user_id):
            raise errors.OrderNotFound()
        payments: list[Payment] = await service.payments_for_order(order_id)
        return payments

    @post(
        "/payments/callbacks/{provider:str}",
        status_code=200,
        request_max_body_size=CALLBACK_MAX_BYTES,
        responses={
            200: ResponseSpec(
                data_container=CallbackAck,
                description="Notice durable (or a genuine one seen before): stop retrying",
                generate_examples=False,
            ),
            **problem_responses(400, 401, 404, 413, 503),
        },
        summary="Asynchronous notification from a payment provider (signed)",
    )
    async def callback(
        self, request: Request[Any, Any, Any], provider: FromPath[str]
    ) -> Response[bytes]:
        """Bad or stale signature, replay: 401 and nothing changes; not durable: 503."""
        body = await request.body()
        answer = await payment_service(request).handle_callback(
            provider, dict(request.headers), body
        )
        if answer.status_code == 200:
            ack = CallbackAck(result=str(answer.body.get("result", "ok")))
            return Response(content=_encode(ack), media_type="application/json")
        code = str(answer.body.get("code", "callback_refused"))
        problem = Problem(
            type=f"urn:flashsale:problem:{code}",
            title=code.replace("_", " ").capitalize(),
            status=answer.status_code,
            detail=_CALLBACK_DETAIL.get(answer.status_code, "callback refused"),
            code=code,
        )
        return Response(
            content=_encode(problem),
            status_code=answer.status_code,
            media_type=PROBLEM_JSON,
            headers={"retry-after": "1"} if answer.status_code == 503 else None,
        )

    @put(
        "/me/payment-password",
        guards=[require_user],
        security=BEARER,
        status_code=204,
        responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
        summary="Set the payment password (changing it needs old_password)",
    )
    async def set_password(
        self, request: Request[Any, Any, Any], data: JSONBody[PasswordSet]
    ) -> None:
        principal = principal_of(request)
        await payment_service(request).set_password(
            principal.user_id, data.password, data.old_password
        )

    @get(
        "/me/wallet",
        guards=[require_user],
        security=BEARER,
        responses=problem_responses(400, 401, 503),
        summary="The caller's wallet in one currency, with its latest ledger entries",
    )
    async def my_wallet(
        self,
        request: Request[Any, Any, Any],
        currency: Annotated[
            str, QueryParameter(name="currency", pattern=r"^[A-Z]{3}$", required=False)
        ] = "CNY",
    ) -> Wallet:
        return await payment_service(request).wallet(principal_of(request).user_id, currency)

    @post(
        "/admin/wallets/{user_id:str}/credit",
        guards=[require_admin],
        security=BEARER,
        status_code=200,
        responses=problem_responses(400, 401, 403, 413, 422, 428, 503),
        summary="Credit a buyer's wallet (admin); each Idempotency-Key credits once",
        description="The Idempotency-Key header is required (428 idempotency_key_required "
        "without it): a credit retried after a lost answer must not be paid twice. The same "
        "key with the same body answers the wallet again (200, credited once); with another "
        "body (another kind too: one key credits the balance or the coins, never both), "
        "422 idempotency_key_reused.",
    )
    async def credit(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        data: JSONBody[WalletCredit],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=128, required=False)
        ] = None,
    ) -> Wallet:
        buyer = checked_user_id(user_id)
        if not idempotency_key:
            raise IdempotencyKeyRequired("a wallet credit needs an Idempotency-Key header")
        return await payment_service(request).credit_wallet(
            buyer,
            data.amount_cents,
            data.reason,
            actor=principal_of(request).user_id,
            currency=data.currency,
            idempotency_key=idempotency_key,
            kind=data.kind,
        )

    @review.listing("/admin/refunds", "Refund requests for review (admin)")
    async def list_refunds(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[
            RefundStatus | None, QueryParameter(name="status", required=False)
        ] = None,
    ) -> list[Refund]:
        refunds: list[Refund] = await Refunds(payment_service(request)).list(status)
        return refunds

    @review.decision(
        "/admin/refunds/{refund_id:str}/approve",
        "Approve a refund: paid back once, however often it is approved",
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        refund_id: FromPath[str],
        data: Annotated[RefundDecision | None, Body()] = None,
    ) -> Refund:
        desk = Refunds(payment_service(request))
        return await review.decide(request, desk.approve, _refund_id(refund_id), data)

    @review.decision("/admin/refunds/{refund_id:str}/reject", "Reject a refund: the money is kept")
    async def reject(
        self,
        request: Request[Any, Any, Any],
        refund_id: FromPath[str],
        data: Annotated[RefundDecision | None, Body()] = None,
    ) -> Refund:
        desk = Refunds(payment_service(request))
        return await review.decide(request, desk.reject, _refund_id(refund_id), data)
