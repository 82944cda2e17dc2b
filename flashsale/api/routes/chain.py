"""Delivery on chain over HTTP: a buyer's address (the API's only write to the chain tables).

What the deliverer did is shown on the order (``delivery``) and the sale
(``chain``), read from PostgreSQL by ``flashsale.chain.views``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, put
from litestar.params import JSONBody
from msgspec import Meta, Struct

from flashsale.api.auth import principal_of, require_user
from flashsale.api.problems import problem_responses
from flashsale.api.state import AppState
from flashsale.chain.addresses import set_address
from flashsale.errors import DatabaseUnavailable

BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]


class ChainAddressSet(Struct, forbid_unknown_fields=True):
    address: Annotated[str, Meta(max_length=100)]
    """``0x`` and 40 hex digits, lower case or EIP-55 (a wrong checksum is refused)."""


class ChainController(Controller):
    path = "/v1"
    tags = ["delivery"]  # noqa: RUF012

    @put(
        "/me/chain-address",
        guards=[require_user],
        security=BEARER,
        status_code=204,
        responses=problem_responses(400, 401, 413, 422, 503),
        summary="Set the address the caller's tokens are minted to",
    )
    async def set_chain_address(
        self, request: Request[Any, Any, Any], data: JSONBody[ChainAddressSet]
    ) -> None:
        state: AppState = request.app.state["app_state"]
        if state.pg_pool is None:
            raise DatabaseUnavailable("chain addresses need FLASHSALE_DATABASE_URL")
        await set_address(state.pg_pool, principal_of(request).user_id, data.address)
