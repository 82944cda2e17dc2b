"""The bench's yardstick: a bare POST that reads and validates the purchase body.

Mounted only when FLASHSALE_BENCH_ENDPOINTS=1.
"""

from __future__ import annotations

from flashsale.api.schemas import EchoOut, PurchaseBody
from litestar import Controller, post
from litestar.params import JSONBody


class BenchController(Controller):
    path = "/v1/bench"
    tags = ["bench"]  # noqa: RUF012

    @post("/echo", status_code=200, summary="Bare POST: read and validate the purchase body")
    async def echo(self, data: JSONBody[PurchaseBody | None] = None) -> EchoOut:
        return EchoOut(ok=True)
