"""Checkouts of a cart (buyer): every serial or none, split into a parent bill and
merchant bills (flashsale/orders). Needs PostgreSQL: 503 ``payments_unavailable`` without.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody

from flashsale.api.auth import principal_of, require_user
from flashsale.api.body import fingerprint, strict_body
from flashsale.api.problems import problem_responses
from flashsale.api.routes.sales import IDEMPOTENCY_KEY
from flashsale.api.state import AppState
from flashsale.orders.checkout import Checkouts
from flashsale.orders.models import CheckoutCreate, CheckoutOut

BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
_encode = msgspec.json.Encoder().encode


def checkouts(request: Request[Any, Any, Any]) -> Checkouts:
    state: AppState = request.app.state["app_state"]
    service = state.payment_service(request.scope)  # 503 without PostgreSQL
    return Checkouts(service.pool, state.engine)


IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY.pattern,
        description="Same key and body: the first answer again (200). "
        "Same key, another body: 422 idempotency_key_reused.",
    ),
]


class CheckoutsController(Controller):
    path = "/v1/checkouts"
    tags = ["orders"]  # noqa: RUF012

    @post(
        "/",
        guards=[require_user],
        security=BEARER,
        status_code=201,
        responses={
            201: ResponseSpec(
                data_container=CheckoutOut,
                description="The checkout: its orders, its parent bill, a bill per merchant",
                generate_examples=False,
            ),
            200: ResponseSpec(
                data_container=CheckoutOut,
                description="Replay: the answer first given under this Idempotency-Key",
                generate_examples=False,
            ),
            **problem_responses(400, 401, 404, 409, 413, 422, 429, 503),
        },
        summary="Buy a cart across drops: every serial or none, bills split by merchant",
        description="Each serial is bought through the purchase path; when one is refused, "
        "what the checkout got is released before the 409 (with that item's code) is sent. "
        "`coins_cents` are taken from the buyer's coins and spread over the orders by price.",
    )
    async def checkout(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CheckoutCreate],
        key: IdempotencyKey = None,
    ) -> Response[bytes]:
        body = await strict_body(request, CheckoutCreate)
        state: AppState = request.app.state["app_state"]
        placed = await checkouts(request).place(
            principal_of(request).user_id,
            body,
            ip=state.client_ip(request.scope),
            idempotency_key=key,
            fingerprint=fingerprint(body) if key else "",
        )
        return Response(
            content=_encode(placed.checkout),
            status_code=200 if placed.replayed else 201,
            media_type="application/json",
        )
