"""The ops console: ``/console``, a page of the app's own, and the live view it polls.

The page and its assets (``api/static/console/``: plain HTML, JavaScript and
CSS, no build step, nothing loaded from another host) are public: they hold no
data. Everything the page shows comes from the admin endpoints, called with the
admin token the operator signs in with (kept in the tab's sessionStorage only).
The one endpoint added for it is ``GET /v1/admin/sales/{sale_id}/live``: what
``flashsale sale watch`` shows, in one answer the page polls every second
(purchases/s is the difference of two polls, as the CLI computes it).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, get
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from flashsale.api.auth import require_admin
from flashsale.api.lag import sale_lags
from flashsale.api.problems import PG_UNREACHABLE, problem_responses
from flashsale.api.schemas import SaleOut
from flashsale.api.state import AppState, stats_key
from flashsale.engine.errors import SaleNotFound
from flashsale.engine.models import SALE_ID
from flashsale.store.queries import Queries

ASSETS_DIR = Path(__file__).resolve().parent / "static" / "console"
ASSETS_PATH = "/console/assets"
PROBE_TIMEOUT_S = 2.0
q = Queries("flashsale.store")
# The page runs only its own files: no inline script, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class SaleLive(msgspec.Struct, kw_only=True):
    """One sample of a live sale (``GET /v1/admin/sales/{sale_id}/live``)."""

    at: datetime
    sale: SaleOut
    purchases: int
    """Orders created since the sale began, counted by every API worker (flushed each second)."""
    replays: int
    refusals: dict[str, int]
    """Refused purchases by problem code (``sold_out``, ``limit_reached``, ...)."""
    lag: int
    """Stream entries of the sale not yet persisted by the write-behind."""
    lag_oldest_age_s: float
    deliveries_waiting: dict[str, int] | None
    """Deliveries not yet confirmed, by status; null without PostgreSQL or when it is away."""


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state["app_state"]
    return state


async def _deliveries_waiting(state: AppState, sale_id: str) -> dict[str, int] | None:
    if state.pg_pool is None:
        return None
    try:
        rows = await asyncio.wait_for(
            state.pg_pool.fetch(q("console_deliveries_waiting"), sale_id), PROBE_TIMEOUT_S
        )
    except PG_UNREACHABLE:  # TimeoutError among them: answer without the number
        return None
    waiting = dict.fromkeys(("awaiting_address", "queued", "submitted"), 0)
    waiting.update({row["status"]: row["n"] for row in rows})
    return waiting


class ConsoleController(Controller):
    path = "/v1/admin/sales"
    tags = ["admin"]  # noqa: RUF012
    guards = [require_admin]  # noqa: RUF012
    security = [{"BearerAuth": []}]  # noqa: RUF012

    @get(
        "/{sale_id:str}/live",
        responses=problem_responses(401, 403, 404, 503),
        summary="A sale as it runs: counters, purchases, refusals by code, lag (admin)",
        description="What `flashsale sale watch` shows, for the ops console to poll.",
    )
    async def live(self, request: Request[Any, Any, Any], sale_id: FromPath[str]) -> SaleLive:
        if SALE_ID.match(sale_id) is None:
            raise SaleNotFound()
        state = _state(request)
        engine = state.engine
        sale = await engine.get_sale(sale_id)
        raw = await engine.redis.hgetall(stats_key(engine.namespace, sale_id))
        stats = {_text(k): int(v) for k, v in raw.items()}
        [lag] = await sale_lags(engine, [sale_id])  # over a bucketed drop's buckets
        return SaleLive(
            at=datetime.now(UTC),
            sale=SaleOut.of(sale, None),
            purchases=stats.get("created", 0),
            replays=stats.get("replayed", 0),
            refusals={k[4:]: v for k, v in sorted(stats.items()) if k.startswith("rej:")},
            lag=lag.entries,
            lag_oldest_age_s=lag.oldest_age_ms / 1000,
            deliveries_waiting=await _deliveries_waiting(state, sale_id),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@get(["/console", "/console/"], include_in_schema=False, name="console_page")
async def console_page() -> Response[bytes]:
    """The page itself; the rest is its JavaScript talking to the admin endpoints."""
    return Response(
        (ASSETS_DIR / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": CSP, "cache-control": "no-cache"},
    )


def console_routes() -> Router:
    """The page, its assets and the live view (the plugin mounts this one router)."""
    assets = create_static_files_router(
        path=ASSETS_PATH, directories=[ASSETS_DIR], include_in_schema=False, name="console_assets"
    )
    return Router(path="/", route_handlers=[console_page, assets, ConsoleController])
