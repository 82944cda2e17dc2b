"""The admin review queues (refunds, after-sales tickets): one shape for their routes.

A queue is listed by status and each item approved or rejected once, with an
optional note kept with the decision and the admin who made it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from litestar import Request, get, post

from flashsale.api.auth import principal_of, require_admin
from flashsale.api.problems import problem_responses

T = TypeVar("T")
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]


class Noted(Protocol):
    @property
    def note(self) -> str | None: ...


def listing(path: str, summary: str) -> get:
    """``GET`` of a queue's items (admin), filtered by ``status``."""
    return get(
        path,
        guards=[require_admin],
        security=BEARER,
        responses=problem_responses(400, 401, 403, 503),
        summary=summary,
    )


def decision(path: str, summary: str) -> post:
    """``POST`` approving or rejecting one item (admin), with an optional note."""
    return post(
        path,
        guards=[require_admin],
        security=BEARER,
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 413, 503),
        summary=summary,
    )


async def decide(
    request: Request[Any, Any, Any],
    act: Callable[[str, str, str | None], Awaitable[T]],
    item_id: str,
    data: Noted | None,
) -> T:
    """``act(item_id, admin, note)``: the decision, made by the signed-in admin."""
    return await act(item_id, principal_of(request).user_id, data.note if data else None)
