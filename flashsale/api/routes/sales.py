"""Sales: create, read and tune (admin), and the purchase endpoint (buyers).

The purchase is the hot path: one engine call (auto-pipelined with the
concurrent ones), a cached token check, and nothing else that could be done
once. A refusal is answered straight from here (no exception unwinding
through the framework) with the same problem mapping as everywhere else.
"""

from __future__ import annotations

import re
from time import perf_counter
from typing import Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.response.base import ASGIResponse

from flashsale.api import metrics
from flashsale.api.answers import json_answer, refusal
from flashsale.api.auth import bearer_principal, principal_of, require_admin
from flashsale.api.body import PurchaseOperation, decode_purchase_body, strict_body
from flashsale.api.body import fingerprint as request_fingerprint
from flashsale.api.problems import PG_UNREACHABLE, problem_responses
from flashsale.api.schemas import PurchaseOut, SaleOut
from flashsale.api.state import AppState
from flashsale.chain.views import sale_chain
from flashsale.engine.errors import SaleNotFound, SoldOut
from flashsale.engine.models import SALE_ID, Sale, SaleCreate, SaleUpdate
from flashsale.errors import FlashsaleError

MAX_SALE_BODY_BYTES = 64 * 1024 * 1024  # a 1,000,000-serial list sale fits
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_encode = msgspec.json.Encoder().encode

_SOLD_OUT = refusal(SoldOut())
_SALE_NOT_FOUND = refusal(SaleNotFound())


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state["app_state"]
    return state


def _check_sale_id(sale_id: str) -> None:
    if SALE_ID.match(sale_id) is None:
        raise SaleNotFound()


def order_responses(*problems: int) -> dict[int, ResponseSpec]:
    """A purchase's answers: 201 a new order, 200 its replay under the same key, problems."""
    return {
        201: ResponseSpec(
            data_container=PurchaseOut, description="A new order", generate_examples=False
        ),
        200: ResponseSpec(
            data_container=PurchaseOut,
            description="Replay: the answer first given under this Idempotency-Key",
            generate_examples=False,
        ),
        **problem_responses(*problems),
    }


class SalesController(Controller):
    path = "/v1/sales"
    tags = ["sales"]  # noqa: RUF012

    @post(
        "/",
        guards=[require_admin],
        security=BEARER,
        status_code=201,
        request_max_body_size=MAX_SALE_BODY_BYTES,
        responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
        summary="Create a sale (admin)",
    )
    async def create_sale(
        self, request: Request[Any, Any, Any], data: JSONBody[SaleCreate]
    ) -> Sale:
        spec = await strict_body(request, SaleCreate)
        return await _state(request).engine.create_sale(spec)

    @get(
        "/{sale_id:str}",
        responses=problem_responses(404, 503),
        summary="A sale's public status",
    )
    async def get_sale(self, request: Request[Any, Any, Any], sale_id: FromPath[str]) -> SaleOut:
        _check_sale_id(sale_id)
        state = _state(request)
        sale = await state.engine.get_sale(sale_id)
        chain = None
        if state.pg_pool is not None:
            try:
                chain = await sale_chain(state.pg_pool, sale_id)
            except PG_UNREACHABLE:  # the sale is Redis' to tell: answer without its contract
                chain = None
        return SaleOut.of(sale, chain)

    @patch(
        "/{sale_id:str}",
        guards=[require_admin],
        security=BEARER,
        request_max_body_size=MAX_SALE_BODY_BYTES,
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
        summary="Tune a live sale (admin)",
    )
    async def tune_sale(
        self, request: Request[Any, Any, Any], sale_id: FromPath[str], data: JSONBody[SaleUpdate]
    ) -> Sale:
        _check_sale_id(sale_id)
        state = _state(request)
        update = await strict_body(request, SaleUpdate)
        sale = await state.engine.tune(
            sale_id, update, actor=f"api:{principal_of(request).user_id}"
        )
        state.sold_out.forget(sale_id)
        return sale

    @post(
        "/{sale_id:str}/purchase",
        security=BEARER,
        operation_class=PurchaseOperation,
        status_code=201,
        responses=order_responses(400, 401, 404, 409, 413, 422, 429, 503),
        summary="Buy one serial (buyer)",
    )
    async def purchase(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """The hot path. Deliberately takes only ``request``: Litestar's per-parameter
        extraction and validation, and its response conversion, cost more than the
        few lines that do the same here (the OpenAPI schema still documents them)."""
        started = perf_counter()
        state: AppState = request.app.state["app_state"]
        # The two headers read in one pass over the raw list (the first of each, as
        # Litestar's mapping would give): building that mapping costs more than the pass.
        authorization: bytes | None = None
        idempotency_raw: bytes | None = None
        for name, value in request.scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value
            elif name == b"idempotency-key" and idempotency_raw is None:
                idempotency_raw = value
        # inline, not a guard: see auth.py
        principal = bearer_principal(
            state.tokens, None if authorization is None else authorization.decode("latin-1")
        )
        request.scope["user"] = principal
        sale_id: str = request.path_params["sale_id"]
        idempotency_key = None if idempotency_raw is None else idempotency_raw.decode("latin-1")
        if idempotency_key is not None and IDEMPOTENCY_KEY.match(idempotency_key) is None:
            raise ValidationException(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
                extra=[{"message": "invalid", "key": "Idempotency-Key", "source": "header"}],
            )
        parsed = decode_purchase_body(await request.body())
        # A replay must reach Redis (its first answer is remembered there), so only
        # requests without an Idempotency-Key may be answered sold_out from memory.
        if idempotency_key is None and state.sold_out.hit(sale_id, started):
            metrics.count(metrics.SOLD_OUT_SHORT_CIRCUIT)
            metrics.count_purchase("sold_out")
            state.stats.count(sale_id, "rej:sold_out")
            return _SOLD_OUT
        if SALE_ID.match(sale_id) is None:
            return _SALE_NOT_FOUND
        fingerprint = ""
        if idempotency_key is not None:
            fingerprint = request_fingerprint(parsed)
        try:
            result = await state.engine.purchase(
                sale_id,
                principal.user_id,
                ip=state.client_ip(request.scope),
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
        except FlashsaleError as exc:
            if isinstance(exc, SoldOut):
                state.sold_out.remember(sale_id, started)
            code = exc.code
            metrics.count_purchase(code)
            if code != "sale_not_found":
                state.stats.count(sale_id, f"rej:{code}")
            metrics.observe(metrics.PURCHASE_SECONDS, perf_counter() - started)
            return refusal(exc)
        replayed = result.replayed
        outcome = "replayed" if replayed else "created"
        metrics.count_purchase(outcome)
        state.stats.count(sale_id, outcome)
        metrics.observe(metrics.PURCHASE_SECONDS, perf_counter() - started)
        return json_answer(_encode(PurchaseOut.of(result.order)), 200 if replayed else 201)
