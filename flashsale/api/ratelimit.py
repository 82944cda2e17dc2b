"""Per-client-IP request rate limit, counted in Redis so every worker shares it.

Off unless ``FLASHSALE_IP_RATE_PER_S`` is set. A fixed one-second window: one
small script per request (INCR, and EXPIRE on the window's first request),
sent through an auto-pipeline so concurrent requests share round trips.
Litestar's built-in limiter counts per process, which would multiply the
limit by the number of workers.

When Redis does not answer, requests are let through: the limiter protects
the engine, it must not become the reason the API is down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
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

from flashsale.api.metrics import RATE_LIMITED
from flashsale.api.problems import PROBLEM_JSON, RateLimited, problem_bytes
from flashsale.engine.resp import encode_command
from flashsale.engine.router import ClusterRouter, Router, SingleRouter
from flashsale.engine.scripts import LuaScript

log = logging.getLogger("flashsale.api")

_SOURCE = """-- ip_rate-1: count one request in the caller's one-second window.
-- KEYS[1] window counter   ARGV[1] window TTL (s)   Reply: the count so far
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
IP_RATE_SCRIPT = LuaScript(
    name="ip_rate", num_keys=1, source=_SOURCE, sha=hashlib.sha1(_SOURCE.encode()).hexdigest()
)
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})


def client_ip(scope: Scope, trust_forwarded_for: bool) -> str:
    """The caller's address: the socket peer, or X-Forwarded-For's first hop behind a proxy.

    ``trust_forwarded_for``: FLASHSALE_TRUSTED_PROXIES names at least one proxy.
    """
    if trust_forwarded_for:
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                first = value.split(b",", 1)[0].strip()
                if first:
                    return first.decode("latin-1")
    client = scope.get("client")
    return client[0] if client else ""


class IpRateLimiter:
    """Counts through the engine's router: auto-pipelined, and cluster-aware (one key each)."""

    def __init__(self, url: str, namespace: str, per_s: float, *, cluster: bool = False) -> None:
        self.limit = max(1, math.floor(per_s))
        self._namespace = namespace
        self._router: Router = ClusterRouter(url) if cluster else SingleRouter(url)

    def key(self, ip: str, second: int) -> str:
        return f"{self._namespace}:iprate:{ip}:{second}"

    async def allow(self, ip: str) -> bool:
        key = self.key(ip, int(time.time()))
        command = encode_command(["EVALSHA", IP_RATE_SCRIPT.sha, 1, key, 2])
        try:
            n = await self._router.call(IP_RATE_SCRIPT, key, command)
        except Exception as exc:  # fail open
            log.warning("rate limiter unavailable: %s", exc)
            return True
        return int(n) <= self.limit

    async def aclose(self) -> None:
        await self._router.aclose()


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
                ip = client_ip(scope, bool(state.settings.api.trusted_proxies))
                if not await limiter.allow(ip):
                    RATE_LIMITED.inc()
                    await send(_START)
                    await send(_BODY_EVENT)
                    return
        await app(scope, receive, send)

    return middleware
