"""The access log and the request id: one line per HTTP request, and an id on every line.

Wraps the whole application (``create_app``), outside routing, so 404s, 405s
and the rate limiter's 429s are logged too. Each request gets an id: the
caller's ``X-Request-Id`` when it is sane (1 to 128 of ``A-Za-z0-9._:-``),
otherwise a fresh one; it is set in ``flashsale.logs.REQUEST_ID`` while the
request is served (every log line it causes carries it) and returned in the
``X-Request-Id`` response header. When the answer is complete, one line on
the ``flashsale.access`` logger: method, path (without the query: it may carry
cursors and the like), status, duration in ms and the request id.

Cost on the purchase path: measured in docs/design.md ("Logs").
"""

from __future__ import annotations

import os
import re
from itertools import count
from time import perf_counter
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from flashsale import logs
from flashsale.api import metrics
from flashsale.logs import REQUEST_ID

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# A fresh id: this worker's random prefix and a counter (unique without a syscall each).
_PREFIX = os.urandom(5).hex()
_SEQUENCE = count(1)


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-Id when sane, else a new one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            if _SANE.match(value):
                return value.decode("ascii")
            break
    return f"{_PREFIX}-{next(_SEQUENCE):x}"


def access_log(app: ASGIApp) -> ASGIApp:
    """The middleware (see the module docstring); anything but HTTP passes through."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = perf_counter()
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        echoed = (HEADER, request_id.encode("ascii"))
        status = 500  # the application failed before it answered

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # a copy: a prepared answer's header list may be shared between requests
                headers: Any = [*message.get("headers", ()), echoed]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = perf_counter() - started
            metrics.observe_http(scope, status, elapsed)
            elapsed_ms = elapsed * 1000
            logs.access(scope["method"], scope["path"], status, elapsed_ms, request_id)
            REQUEST_ID.reset(token)

    return middleware
