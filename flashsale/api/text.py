"""Text PostgreSQL cannot store is refused at the edge (422 ``validation_error``).

PostgreSQL's ``text`` and ``jsonb`` hold no NUL character and only valid
UTF-8. A value that reached Redis with one would dead-letter its event in the
write-behind (and every event that depends on it: a sale's orders, a buyer's),
so no request carrying one gets past the edge:

- the path, the query and every header value: ``text_guard`` (ASGI middleware,
  before routing, so path parameters are covered too);
- the body: ``CheckedRequest.body`` (every handler's body is read through it,
  Litestar's ``data`` included). JSON cannot carry a raw NUL or invalid UTF-8
  (msgspec refuses both), only the escape ``\\u0000``: the scan looks for that
  escape where it is one (an odd run of backslashes before ``u0000``);
- the token's ``sub``: ``tokens.TokenVerifier`` (401).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from flashsale.api.problems import PROBLEM_JSON, problem_bytes
from flashsale.errors import ValidationFailed
from flashsale.text import storable, storable_bytes

# Probes that store nothing and document no 422 (a scraper's odd query is not our concern).
UNGUARDED = frozenset({"/health", "/metrics"})
# \u0000 as a JSON escape: preceded by an even number (0, 2, ...) of other backslashes
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def unstorable_part(scope: Scope) -> str | None:
    """Which part of the request line or headers PostgreSQL could not store, if any."""
    if not storable(scope["path"]) or not storable_bytes(scope.get("raw_path") or b""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if query and not storable_bytes(query.replace(b"+", b" ")):
        return "query"
    for name, value in scope["headers"]:
        if b"\x00" in value:
            return f"header {name.decode('latin-1')}"
    return None


def _refusal(where: str) -> ValidationFailed:
    return ValidationFailed(
        f"the {where} holds text that cannot be stored (NUL or not UTF-8)",
        errors=[{"message": "NUL or text that is not UTF-8", "key": where}],
    )


def text_guard(app: ASGIApp) -> ASGIApp:
    """Middleware: 422 ``validation_error`` for a path, query or header PostgreSQL can't store."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"] not in UNGUARDED:
            where = unstorable_part(scope)
            if where is not None:
                status, body = problem_bytes(_refusal(where))
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", PROBLEM_JSON.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await app(scope, receive, send)

    return middleware


def body_is_storable(body: bytes, content_type: str) -> bool:
    """A request body free of text PostgreSQL can't store (files are bytes: not judged)."""
    if not body or content_type.startswith("multipart/"):
        return True
    if content_type.startswith("application/x-www-form-urlencoded"):
        return storable_bytes(body.replace(b"+", b" "))
    return b"\\u0000" not in body or _JSON_NUL.search(body) is None


class CheckedRequest(Request[Any, Any, Any]):
    """Litestar's request whose body is refused (422) when it carries unstorable text."""

    async def body(self) -> bytes:
        body = await super().body()
        if body and not body_is_storable(body, self.headers.get("content-type", "")):
            raise _refusal("body")
        return body
