"""The bench's yardstick: a bare POST that reads and validates the purchase body.

Mounted only when FLASHSALE_BENCH_ENDPOINTS=1.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from flashsale.api.body import PurchaseOperation, decode_purchase_body
from flashsale.api.schemas import EchoOut


class BenchController(Controller):
    path = "/v1/bench"
    tags = ["bench"]  # noqa: RUF012

    @post(
        "/echo",
        status_code=200,
        operation_class=PurchaseOperation,
        summary="Bare POST: read and validate the purchase body",
    )
    async def echo(self, request: Request[Any, Any, Any]) -> EchoOut:
        decode_purchase_body(await request.body())
        return EchoOut(ok=True)
