"""Orders: read one (owner or admin), list the caller's, cancel a pending one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, QueryParameter

from flashsale.api.auth import principal_of, require_user
from flashsale.api.problems import problem_responses
from flashsale.api.services import Services
from flashsale.engine.errors import OrderNotFound
from flashsale.engine.models import Order

ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[0-9a-f]{20}$")
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
MAX_SALES_LISTED = 200


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state["services"]
    return services


class OrdersController(Controller):
    path = "/v1"
    tags = ["orders"]  # noqa: RUF012
    guards = [require_user]  # noqa: RUF012
    security = BEARER

    @get(
        "/orders/{order_id:str}",
        responses=problem_responses(401, 404, 503),
        summary="One order (its buyer or an admin; anyone else gets 404)",
    )
    async def get_order(self, request: Request[Any, Any, Any], order_id: FromPath[str]) -> Order:
        principal = principal_of(request)
        order = None
        if ORDER_ID.match(order_id):
            order = await _services(request).engine.get_order(order_id)
        if order is None or (not principal.admin and order.user_id != principal.user_id):
            raise OrderNotFound()
        return order

    @get(
        "/me/orders",
        responses=problem_responses(400, 401, 503),
        summary="The caller's orders, in one sale or in all of them",
    )
    async def my_orders(
        self,
        request: Request[Any, Any, Any],
        sale_id: Annotated[
            str | None,
            QueryParameter(name="sale_id", pattern=r"^[A-Za-z0-9_-]{1,64}$", required=False),
        ] = None,
    ) -> list[Order]:
        engine = _services(request).engine
        user_id = principal_of(request).user_id
        sale_ids = [sale_id] if sale_id else (await engine.sale_ids())[:MAX_SALES_LISTED]
        orders: list[Order] = []
        for sid in sale_ids:
            orders.extend(await engine.buyer_orders(sid, user_id))
        orders.sort(key=lambda order: order.created_at)
        return orders

    @post(
        "/orders/{order_id:str}/cancel",
        status_code=200,
        responses=problem_responses(401, 404, 409, 503),
        summary="Cancel a pending order (its buyer, or an admin); the serial returns to the pool",
    )
    async def cancel_order(self, request: Request[Any, Any, Any], order_id: FromPath[str]) -> Order:
        principal = principal_of(request)
        if not ORDER_ID.match(order_id):
            raise OrderNotFound()
        engine = _services(request).engine
        if principal.admin:
            return await engine.cancel(order_id, reason=f"cancelled by admin {principal.user_id}")
        return await engine.cancel(order_id, user_id=principal.user_id)
