"""Per-client-IP request rate limit, counted in Redis so every worker shares it.

Off unless ``FLASHSALE_IP_RATE_PER_S`` is set. A fixed one-second window
counted by the engine (``Engine.count_request``: ``lua/ip_rate-1.lua``, one
small script per request on the auto-pipelined path, so concurrent requests
share round trips). Litestar's built-in limiter counts per process, which
would multiply the limit by the number of workers.

When Redis does not answer, requests are let through: the limiter protects
the engine, it must not become the reason the API is down.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from flashsale.api import metrics
from flashsale.api.problems import PROBLEM_JSON, RateLimited, problem_bytes
from flashsale.engine.engine import Engine

log = logging.getLogger("flashsale.api")

UNLIMITED_PATHS = frozenset({"/health", "/metrics"})


class IpRateLimiter:
    """At most ``per_s`` requests per second from one address, across every worker."""

    def __init__(self, engine: Engine, per_s: float) -> None:
        self.limit = max(1, math.floor(per_s))
        self._engine = engine

    async def allow(self, ip: str) -> bool:
        try:
            n = await self._engine.count_request(ip)
        except Exception as exc:  # fail open
            log.warning("rate limiter unavailable: %s", exc)
            return True
        return n <= self.limit


_STATUS, _BODY = problem_bytes(
    RateLimited("too many requests from this address", retry_after_s=1.0)
)
_HEADERS = [
    (b"content-type", PROBLEM_JSON.encode()),
    (b"content-length", str(len(_BODY)).encode()),
    (b"retry-after", b"1"),
]


_START: HTTPResponseStartEvent = {
    "type": "http.response.start",
    "status": _STATUS,
    "headers": _HEADERS,
}
_BODY_EVENT: HTTPResponseBodyEvent = {
    "type": "http.response.body",
    "body": _BODY,
    "more_body": False,
}


def rate_limit_middleware(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: refuse with 429 ``rate_limited`` over the per-IP rate."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"] not in UNLIMITED_PATHS:
            state: Any = scope["litestar_app"].state["app_state"]
            limiter: IpRateLimiter | None = state.limiter
            if limiter is not None:
                ip = state.client_ip(scope)
                if not await limiter.allow(ip):
                    metrics.count(metrics.RATE_LIMITED)
                    await send(_START)
                    await send(_BODY_EVENT)
                    return
        await app(scope, receive, send)

    return middleware
