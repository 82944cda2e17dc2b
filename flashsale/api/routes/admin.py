"""The admin desk: list sales, a sale's orders, the orders of a serial, a buyer's ledger,
unlock or reset a buyer's payment password (each action kept with who, when, why), list
the deliveries the deliverer gave up and deliver one again (``chain/redeliver.py``).

Lists are JSON arrays, newest first, from PostgreSQL (``store/admin.py``,
``payments/wallet.py``); while more remain, a ``Link: <...>; rel="next"``
header names the next page (its ``cursor`` is opaque). The ledger is one
object (balances and a page of entries) with the same header and its
``next_cursor``. Without PostgreSQL these answer 503 ``database_unavailable``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from flashsale.api.auth import principal_of, require_admin
from flashsale.api.problems import problem_responses
from flashsale.api.routes.payments import checked_user_id
from flashsale.api.state import AppState
from flashsale.chain.errors import DeliveryNotFound
from flashsale.chain.redeliver import GivenUp, Redelivery, given_up, redeliver
from flashsale.engine.errors import SaleNotFound
from flashsale.engine.models import ORDER_ID, SALE_ID, Order
from flashsale.engine.statuses import OrderStatus
from flashsale.errors import DatabaseUnavailable, ValidationFailed
from flashsale.payments import wallet
from flashsale.payments.models import Ledger, PasswordDeskAction, PasswordState
from flashsale.payments.passwords import Passwords
from flashsale.store import admin
from flashsale.store.paging import MAX_LIMIT

BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=MAX_LIMIT, required=False)]
Cursor = Annotated[
    str | None, QueryParameter(name="cursor", max_length=512, pattern=r"^[A-Za-z0-9_-]+$")
]
SERIAL_MAX = 128


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state["app_state"]
    return state


def _pool(request: Request[Any, Any, Any]) -> Any:
    pool = _state(request).pg_pool
    if pool is None:
        raise DatabaseUnavailable("this server runs without PostgreSQL (FLASHSALE_DATABASE_URL)")
    return pool


def _sale_id(sale_id: str) -> str:
    if not SALE_ID.match(sale_id):
        raise SaleNotFound()
    return sale_id


def next_link(request: Request[Any, Any, Any], cursor: str | None) -> dict[str, str]:
    """``Link: <path?...&cursor=...>; rel="next"`` while more remain (a relative target)."""
    if cursor is None:
        return {}
    query = {k: v for k, v in request.query_params.items() if k != "cursor"}
    query["cursor"] = cursor
    # the path as the client sent it, percent-encoded: a header is latin-1, and a buyer id
    # may hold any character (a decoded one made the answer a 500; schemathesis found it)
    raw: bytes | None = request.scope.get("raw_path")  # some servers leave the query on
    path = quote(raw.partition(b"?")[0], safe="/%") if raw else quote(request.url.path, safe="/")
    return {"link": f'<{path}?{urlencode(query)}>; rel="next"'}


def _passwords(request: Request[Any, Any, Any]) -> Passwords:
    passwords: Passwords = _state(request).payment_service(request.scope).passwords
    return passwords


def _desk_actor(request: Request[Any, Any, Any]) -> str:
    return f"api:{principal_of(request).user_id}"


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]  # noqa: RUF012
    guards = [require_admin]  # noqa: RUF012
    security = BEARER

    @get(
        "/sales",
        responses=problem_responses(400, 401, 403, 422, 503),
        summary="Every sale, newest first, with its live counters (admin; paged)",
    )
    async def sales(
        self, request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None
    ) -> Response[list[admin.SaleListed]]:
        state = _state(request)
        page = await admin.list_sales(_pool(request), state.engine, limit=limit, cursor=cursor)
        return Response(page.items, headers=next_link(request, page.next_cursor))

    @get(
        "/sales/{sale_id:str}/orders",
        responses=problem_responses(400, 401, 403, 404, 422, 503),
        summary="A sale's orders as persisted, newest first, of one status or all (admin; paged)",
    )
    async def sale_orders(
        self,
        request: Request[Any, Any, Any],
        sale_id: FromPath[str],
        status: Annotated[OrderStatus | None, QueryParameter(name="status")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response[list[Order]]:
        page = await admin.sale_orders(
            _pool(request), _sale_id(sale_id), status=status, limit=limit, cursor=cursor
        )
        return Response(page.items, headers=next_link(request, page.next_cursor))

    @get(
        "/sales/{sale_id:str}/serials/{serial:str}/orders",
        responses=problem_responses(400, 401, 403, 404, 422, 503),
        summary="Every order that held a serial of a sale, newest first (admin)",
    )
    async def serial_orders(
        self, request: Request[Any, Any, Any], sale_id: FromPath[str], serial: FromPath[str]
    ) -> list[Order]:
        if not serial or len(serial) > SERIAL_MAX or "\x00" in serial:
            raise ValidationFailed(f"serial must be 1 to {SERIAL_MAX} characters, without NUL")
        return await admin.orders_by_serial(_pool(request), _sale_id(sale_id), serial)

    @get(
        "/buyers/{user_id:str}/ledger",
        responses=problem_responses(400, 401, 403, 422, 503),
        summary="A buyer's balances, coins and movements of both, latest first (admin; paged)",
    )
    async def ledger(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        currency: Annotated[
            str | None, QueryParameter(name="currency", pattern=r"^[A-Z]{3}$")
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response[Ledger]:
        found = await wallet.ledger(
            _pool(request), checked_user_id(user_id), currency=currency, limit=limit, cursor=cursor
        )
        return Response(found, headers=next_link(request, found.next_cursor))

    @get(
        "/buyers/{user_id:str}/payment-password",
        responses=problem_responses(400, 401, 403, 422, 503),
        summary="A buyer's payment password: set, locked, and the admins' actions on it",
    )
    async def password(
        self, request: Request[Any, Any, Any], user_id: FromPath[str]
    ) -> PasswordState:
        return await _passwords(request).state(checked_user_id(user_id))

    @post(
        "/buyers/{user_id:str}/payment-password/unlock",
        status_code=200,
        responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
        summary="Clear a buyer's wrong attempts and lock; the reason is kept (admin)",
    )
    async def unlock_password(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        data: JSONBody[PasswordDeskAction],
    ) -> PasswordState:
        return await _passwords(request).unlock(
            checked_user_id(user_id), _desk_actor(request), data.reason
        )

    @post(
        "/buyers/{user_id:str}/payment-password/reset",
        status_code=200,
        responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
        summary="Forget a buyer's payment password: they set a new one without the old (admin)",
        description="Only after making sure, out of band, that the buyer asks: whoever holds "
        "the buyer's token can then set a new password. The reason is kept.",
    )
    async def reset_password(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        data: JSONBody[PasswordDeskAction],
    ) -> PasswordState:
        return await _passwords(request).reset(
            checked_user_id(user_id), _desk_actor(request), data.reason
        )

    @get(
        "/deliveries/given-up",
        responses=problem_responses(400, 401, 403, 422, 503),
        summary="Deliveries the deliverer gave up (orders paid, undelivered), latest first",
    )
    async def given_up(self, request: Request[Any, Any, Any], limit: Limit = 50) -> list[GivenUp]:
        return await given_up(_pool(request), limit)

    @post(
        "/orders/{order_id:str}/redeliver",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
        summary="Deliver a given-up order's token again (checked on chain before minting)",
    )
    async def redeliver(
        self, request: Request[Any, Any, Any], order_id: FromPath[str]
    ) -> Redelivery:
        if ORDER_ID.match(order_id) is None:
            raise DeliveryNotFound(f"order {order_id} has no delivery")
        return await redeliver(_pool(request), order_id, _desk_actor(request))
