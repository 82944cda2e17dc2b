"""A minimal HTTP/1.1 server that hands provider callbacks to PaymentService.handle_callback.

Stands in for the API's ``POST /v1/payments/callbacks/{provider}`` route so the
service's flow can be tested on its own; the route itself is tested through
the app once it is wired.
"""

from __future__ import annotations

import json

from flashsale.devservers.loopback_http import LoopbackHTTPServer, Request, Response
from flashsale.payments.service import PaymentService

PREFIX = "/v1/payments/callbacks/"


class CallbackServer(LoopbackHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.service: PaymentService | None = None
        self.answers: dict[int, int] = {}

    async def handle(self, request: Request) -> Response:
        status, payload = 404, {"code": "not_found"}
        if (
            request.method == "POST"
            and request.target.startswith(PREFIX)
            and self.service is not None
        ):
            answer = await self.service.handle_callback(
                request.target[len(PREFIX) :], request.headers, request.body
            )
            status, payload = answer.status_code, answer.body
        self.answers[status] = self.answers.get(status, 0) + 1
        return Response(status, json.dumps(payload).encode(), "application/json")
