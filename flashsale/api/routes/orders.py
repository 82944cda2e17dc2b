"""Orders: read one (owner or admin, with its payments), list the caller's, cancel one.

With PostgreSQL configured, a cancel goes through the payment flow
(``PaymentService.cancel_order``): a pending order's open provider trades are
closed first, then the order is cancelled and its serial returns to the pool;
a paid order that is not delivered becomes ``refund_pending`` with a refund for
operator review. Without PostgreSQL there are no payments: the engine cancels
pending orders only. A second cancel of a cancelled order answers 409
``order_not_pending`` with the order's status; a second cancel of a paid order
(now ``refund_pending``) is a retry of the same request for a refund and answers
as the first did, completing it if a crash cut it in two (the refund row).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, QueryParameter
from msgspec import UNSET, UnsetType

from flashsale.api.auth import principal_of, require_user
from flashsale.api.problems import problem_responses
from flashsale.api.routes.admin import Cursor, Limit, next_link
from flashsale.api.schemas import OrderOut
from flashsale.api.state import AppState
from flashsale.chain.views import Delivery, delivery_of
from flashsale.engine import statuses
from flashsale.engine.errors import OrderNotFound, OrderNotPending, cancel_refused
from flashsale.engine.models import ORDER_ID, SALE_ID_PATTERN, Order
from flashsale.engine.statuses import OrderStatus
from flashsale.payments import errors as payment_errors
from flashsale.store import admin

BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
MAX_SALES_LISTED = 200


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state["app_state"]
    return state


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
    async def get_order(self, request: Request[Any, Any, Any], order_id: FromPath[str]) -> OrderOut:
        principal = principal_of(request)
        state = _state(request)
        order = None
        if ORDER_ID.match(order_id):
            order = await state.engine.get_order(order_id)
        if order is None or (not principal.admin and order.user_id != principal.user_id):
            raise OrderNotFound()
        payments = []
        if state.payments is not None:
            payments = await state.payments.payments_for_order(order_id)
        delivery: Delivery | UnsetType = UNSET
        if state.pg_pool is not None and order.status in statuses.PAID:
            delivery = await delivery_of(state.pg_pool, order)
        return OrderOut.of(order, payments, delivery)

    @get(
        "/me/orders",
        responses=problem_responses(400, 401, 422, 503),
        summary="The caller's orders, newest first, of one status or sale or all (paged)",
        description="From PostgreSQL (the write-behind's copy: an order appears within its "
        "lag of being made), newest first, ties by order_id; while more remain, a "
        '`Link: <...>; rel="next"` header names the next page (its `cursor` is opaque). '
        "A server without PostgreSQL answers from Redis for its first "
        f"{MAX_SALES_LISTED} sales.",
    )
    async def my_orders(
        self,
        request: Request[Any, Any, Any],
        sale_id: Annotated[
            str | None,
            QueryParameter(name="sale_id", pattern=SALE_ID_PATTERN, required=False),
        ] = None,
        status: Annotated[OrderStatus | None, QueryParameter(name="status")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response[list[Order]]:
        state = _state(request)
        user_id = principal_of(request).user_id
        if state.pg_pool is not None:
            page = await admin.buyer_orders(
                state.pg_pool, user_id, status=status, sale_id=sale_id, limit=limit, cursor=cursor
            )
        else:
            engine = state.engine
            sale_ids = [sale_id] if sale_id else (await engine.sale_ids())[:MAX_SALES_LISTED]
            orders: list[Order] = []
            for sid in sale_ids:
                orders.extend(await engine.buyer_orders(sid, user_id))
            if status is not None:
                orders = [o for o in orders if o.status == status]
            page = admin.page_of_orders(orders, limit=limit, cursor=cursor)
        return Response(page.items, headers=next_link(request, page.next_cursor))

    @post(
        "/orders/{order_id:str}/complete",
        summary="Complete a delivered order (its buyer): delivered -> completed; the timers "
        "complete it anyway once the sale's after-sales window has passed",
        status_code=200,
        responses=problem_responses(401, 404, 409, 503),
    )
    async def complete_order(
        self, request: Request[Any, Any, Any], order_id: FromPath[str]
    ) -> Order:
        if ORDER_ID.match(order_id) is None:
            raise OrderNotFound()  # what a foreign order answers too
        engine, user_id = _state(request).engine, principal_of(request).user_id
        return (await engine.complete(order_id, user_id=user_id))[0]

    @post(
        "/orders/{order_id:str}/cancel",
        status_code=200,
        responses=problem_responses(401, 404, 409, 503),
        summary="Cancel an order (its buyer, or an admin): a pending one is cancelled and its "
        "serial returns to the pool; a paid one awaits its refund (refund_pending)",
    )
    async def cancel_order(self, request: Request[Any, Any, Any], order_id: FromPath[str]) -> Order:
        principal = principal_of(request)
        if not ORDER_ID.match(order_id):
            raise OrderNotFound()
        state = _state(request)
        engine = state.engine
        user_id = None if principal.admin else principal.user_id
        reason = f"cancelled by admin {principal.user_id}" if principal.admin else None
        if state.payments is None:
            if reason is not None:
                return await engine.cancel(order_id, reason=reason)
            return await engine.cancel(order_id, user_id=user_id)
        payments = state.payment_service(request.scope)
        order = await engine.get_order(order_id)
        if order is None or (user_id is not None and order.user_id != user_id):
            raise OrderNotFound()
        refused = cancel_refused(order.status)  # delivery started: after-sales instead
        if refused is not None:
            raise refused
        retry = order.status == "refund_pending"  # the refund asked again: answered again
        if order.status not in statuses.CANCELLABLE and not retry:  # as the engine answers
            raise OrderNotPending(f"order is {order.status}", status=order.status, order=order)
        try:
            return await payments.cancel_order(
                order_id, user_id, reason=reason or "cancelled by buyer", force=principal.admin
            )
        except payment_errors.OrderNotCancellable as exc:
            status = exc.extra.get("status")
            if status is None:  # the payment is still being recorded: 409, retry shortly
                raise
            raise OrderNotPending(f"order is {status}", status=status) from exc
