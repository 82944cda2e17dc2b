"""Buy again (owner): a new order in the sale of one of the buyer's orders, with every
check of a first purchase (the same engine call); the Idempotency-Key is honoured."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.params import FromPath

from flashsale.api.auth import principal_of, require_user
from flashsale.api.routes.checkout import IdempotencyKey
from flashsale.api.routes.payments import _order_id
from flashsale.api.routes.sales import order_responses
from flashsale.api.schemas import PurchaseOut
from flashsale.api.state import AppState
from flashsale.engine.errors import OrderNotFound, SaleNotFound
from flashsale.orders.errors import SaleDelisted

BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
_encode = msgspec.json.Encoder().encode


class BuyAgainController(Controller):
    path = "/v1/orders"
    tags = ["orders"]  # noqa: RUF012

    @post(
        "/{order_id:str}/buy-again",
        guards=[require_user],
        security=BEARER,
        status_code=201,
        responses=order_responses(400, 401, 404, 409, 422, 429, 503),
        summary="Buy again from the sale of one of the caller's orders (any status)",
        description="A new order as a purchase makes it: 409 sold_out, sale_closed, "
        "sale_paused, limit_reached, or sale_delisted when the drop is gone.",
    )
    async def buy_again(
        self, request: Request[Any, Any, Any], order_id: FromPath[str], key: IdempotencyKey = None
    ) -> Response[bytes]:
        state: AppState = request.app.state["app_state"]
        user_id = principal_of(request).user_id
        order = await state.engine.get_order(_order_id(order_id))
        if order is None or order.user_id != user_id:
            raise OrderNotFound()
        try:
            result = await state.engine.purchase(
                order.sale_id,
                user_id,
                ip=state.client_ip(request.scope),
                # its own key space: a purchase's key in the same sale is another request
                idempotency_key=f"again:{key}" if key else None,
                fingerprint=f"again:{order_id}" if key else "",
            )
        except SaleNotFound:
            raise SaleDelisted(f"the sale {order.sale_id} is no longer sold") from None
        return Response(
            content=_encode(PurchaseOut.of(result.order)),
            status_code=200 if result.replayed else 201,
            media_type="application/json",
        )
