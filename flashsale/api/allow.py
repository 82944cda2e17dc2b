"""``OPTIONS`` answers with the ``Allow`` header of the whole resource.

Litestar 2.25 builds a path's automatic OPTIONS handler with the first routes
registered for it; when handlers of the same path come from two registrations
(two controllers on ``/v1``, say) the merged route keeps that first handler,
and its ``Allow`` misses the methods added later (``GET, OPTIONS`` for a path
that also takes PATCH). The merged routes know their methods: this wrapper
puts them in the answer. Requests other than OPTIONS pass by a string compare.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def allow_of(app: Litestar) -> dict[str, bytes]:
    """Each route template (``/v1/sales/{sale_id}``) and its methods, as the header says them."""
    return {
        route.path_format: ", ".join(sorted(route.methods)).encode("ascii")
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }


def exact_allow(app: Litestar, handler: ASGIApp) -> ASGIApp:
    """Wrap ``handler`` (the app's ASGI handler); the routes are read on the first OPTIONS."""
    methods: dict[str, bytes] = {}

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS":
            await handler(scope, receive, send)
            return
        if not methods:
            methods.update(allow_of(app))

        async def send_allow(message: Message) -> None:
            allow = methods.get(scope.get("path_template") or "")
            if message["type"] == "http.response.start" and allow is not None:
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", allow)]}
            await send(message)

        await handler(scope, receive, send_allow)

    return wrapped
