"""Guards: plain functions that verify the bearer token and put the principal in the scope.

The user id that limits count against comes only from the token (claim
``sub``), never from a body or a header of the caller's choosing.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from flashsale.api.problems import Forbidden, Unauthenticated
from flashsale.api.state import AppState
from flashsale.api.tokens import InvalidToken, Principal, TokenVerifier


def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Verify the bearer token (cached) and put the principal in the scope."""
    state: AppState = connection.app.state["app_state"]
    principal = bearer_principal(state.tokens, connection.headers.get("authorization"))
    connection.scope["user"] = principal
    return principal


def bearer_principal(tokens: TokenVerifier, header: str | None) -> Principal:
    """The principal of an ``Authorization`` header's value; 401 ``unauthenticated`` if none.

    Apart from ``authenticate`` for the purchase, which reads its few headers from the raw
    ASGI list in one pass rather than building Litestar's header mapping.
    """
    if not header:
        raise Unauthenticated("a bearer token is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    try:
        return tokens.verify(token.strip())
    except InvalidToken as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None


# Guards are coroutines on purpose: Litestar runs a plain function guard in a worker
# thread. (The purchase endpoint calls ``authenticate`` itself: Litestar also copies the
# route handler for every guard call, which the hot path cannot afford.)
async def require_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Any authenticated caller (buyer or admin)."""
    authenticate(connection)


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """An authenticated caller whose token carries ``role: admin``."""
    if not authenticate(connection).admin:
        raise Forbidden("this endpoint is for admins")


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal a guard put in the scope."""
    principal: Principal = connection.scope["user"]
    return principal
