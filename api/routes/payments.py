"""Payments over HTTP: attempts, provider callbacks, wallet, payment password, refund review.

Registered with one line in the API's wiring (``PaymentsController`` in the
plugin's route handlers). The PaymentService is built on first use from the
worker's shared services (engine, asyncpg pool) and kept on
``app.state["payments"]``; ``close_payments(app)`` closes its provider clients.
Refusals of the payment flow (``PaymentError``) become problem+json here with
their own status and stable code; everything else goes to the API's handler.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post, put
from litestar.params import Body, FromPath, HeaderParameter, JSONBody, QueryParameter
from msgspec import UNSET, UnsetType

from flashsale.api.auth import principal_of, require_admin, require_user
from flashsale.api.problems import PROBLEM_JSON, problem_responses
from flashsale.api.services import Services
from flashsale.payments import errors
from flashsale.payments.cli import payment_settings_from, providers_from
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
from flashsale.payments.service import PaymentService, PaymentSettings

ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[0-9a-f]{20}$")
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
CALLBACK_MAX_BYTES = 16 * 1024


class PaymentProblem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The API's Problem (RFC 9457 plus ``code``) with the payment flow's extras."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    order_status: str | UnsetType = UNSET
    """order_not_payable: the order's current status."""
    attempts_left: int | UnsetType = UNSET
    """payment_password_wrong: wrong attempts left before the password locks."""
    locked_until: str | UnsetType = UNSET
    """payment_password_locked: when it unlocks (RFC 3339)."""
    payment_id: str | UnsetType = UNSET
    """order_not_payable after a balance debit: the reversed payment."""
    refund_status: str | UnsetType = UNSET
    """refund_already_decided: the decision already taken."""


def payment_problem(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, errors.PaymentError)
    extra = exc.extra
    extras: dict[str, Any] = {}
    if "attempts_left" in extra:
        extras["attempts_left"] = int(extra["attempts_left"])
    if extra.get("locked_until") is not None:
        extras["locked_until"] = extra["locked_until"].isoformat()
    if "payment_id" in extra:
        extras["payment_id"] = str(extra["payment_id"])
    if exc.code == "refund_already_decided" and "status" in extra:
        extras["refund_status"] = str(extra["status"])
    elif "status" in extra:
        extras["order_status"] = str(extra["status"])
    problem = PaymentProblem(
        type=f"urn:flashsale:problem:{exc.code}",
        title=exc.code.replace("_", " ").capitalize(),
        status=exc.status,
        detail=exc.detail,
        code=exc.code,
        **extras,
    )
    return Response(
        content=msgspec.json.encode(problem),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers={"retry-after": "1"} if exc.status == 503 else None,
    )


def payment_service(request: Request[Any, Any, Any]) -> PaymentService:
    """The worker's PaymentService, built on first use."""
    state = request.app.state
    service: PaymentService | None = state.get("payments")
    if service is not None:
        return service
    services: Services = state["services"]
    if services.pg_pool is None:
        raise errors.PaymentsUnavailable("payments need FLASHSALE_DATABASE_URL")
    settings = payment_settings_from(services.settings)
    if not services.settings.public_url:
        # DESIGN: callbacks go to the server's own address unless FLASHSALE_PUBLIC_URL says
        base = str(request.base_url).rstrip("/")
        settings = PaymentSettings(
            **{**{f: getattr(settings, f) for f in settings.__slots__}, "public_url": base}
        )
    service = PaymentService(
        services.pg_pool, services.engine, providers_from(services.settings), settings
    )
    state["payments"] = service
    return service


async def close_payments(app: Litestar) -> None:
    """Close the provider clients (call from the API's lifespan on shutdown)."""
    service: PaymentService | None = app.state.get("payments")
    if service is not None:
        for provider in service.providers.values():
            await provider.aclose()


def _order_id(order_id: str) -> str:
    if not ORDER_ID.match(order_id):
        raise errors.OrderNotFound()
    return order_id


class PaymentsController(Controller):
    path = "/v1"
    tags = ["payments"]  # noqa: RUF012
    exception_handlers = {errors.PaymentError: payment_problem}  # noqa: RUF012

    @post(
        "/orders/{order_id:str}/payments",
        guards=[require_user],
        security=BEARER,
        status_code=201,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
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
        include_in_schema=True,
        summary="Asynchronous notification from a payment provider (signed)",
    )
    async def callback(
        self, request: Request[Any, Any, Any], provider: FromPath[str]
    ) -> Response[bytes]:
        body = await request.body()
        answer = await payment_service(request).handle_callback(
            provider, dict(request.headers), body
        )
        return Response(
            content=msgspec.json.encode(answer.body),
            status_code=answer.status_code,
            media_type="application/json",
        )

    @put(
        "/me/payment-password",
        guards=[require_user],
        security=BEARER,
        status_code=204,
        responses=problem_responses(401, 403, 422, 503),
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
        responses=problem_responses(401, 503),
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
        responses=problem_responses(401, 403, 422, 503),
        summary="Credit a buyer's wallet (admin); the same Idempotency-Key credits once",
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
        return await payment_service(request).credit_wallet(
            user_id,
            data.amount_cents,
            data.reason,
            actor=principal_of(request).user_id,
            currency=data.currency,
            idempotency_key=idempotency_key,
        )

    @get(
        "/admin/refunds",
        guards=[require_admin],
        security=BEARER,
        responses=problem_responses(401, 403, 503),
        summary="Refund requests for review (admin)",
    )
    async def list_refunds(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[
            RefundStatus | None, QueryParameter(name="status", required=False)
        ] = None,
    ) -> list[Refund]:
        refunds: list[Refund] = await Refunds(payment_service(request)).list(status)
        return refunds

    @post(
        "/admin/refunds/{refund_id:str}/approve",
        guards=[require_admin],
        security=BEARER,
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 503),
        summary="Approve a refund: paid back once, however often it is approved",
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        refund_id: FromPath[str],
        data: Annotated[RefundDecision | None, Body()] = None,
    ) -> Refund:
        note = data.note if data else None
        return await Refunds(payment_service(request)).approve(
            refund_id, principal_of(request).user_id, note
        )

    @post(
        "/admin/refunds/{refund_id:str}/reject",
        guards=[require_admin],
        security=BEARER,
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 503),
        summary="Reject a refund: the money is kept",
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        refund_id: FromPath[str],
        data: Annotated[RefundDecision | None, Body()] = None,
    ) -> Refund:
        note = data.note if data else None
        return await Refunds(payment_service(request)).reject(
            refund_id, principal_of(request).user_id, note
        )
