"""Operations: health, Prometheus metrics and the audit of a sale."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from flashsale.api import metrics
from flashsale.api.audit import run_audit
from flashsale.api.auth import require_admin
from flashsale.api.lag import announced, sale_lags
from flashsale.api.problems import Unauthenticated, problem_responses
from flashsale.api.schemas import AuditReport, Check, Health
from flashsale.api.state import AppState
from flashsale.engine.errors import SaleNotFound
from flashsale.engine.models import SALE_ID
from flashsale.store.lag import StreamLag

CHECK_TIMEOUT_S = 2.0


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state["app_state"]
    return state


async def _timed(probe: Any) -> Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as exc:
        return Check(ok=False, error=f"{type(exc).__name__}: {exc}"[:200])
    return Check(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 3))


async def _lags(state: AppState) -> list[StreamLag] | None:
    """The write-behind's lag per sale (store.lag.lag); None when Redis is too slow."""
    try:
        return await asyncio.wait_for(sale_lags(state.engine), CHECK_TIMEOUT_S)
    except Exception:
        return None


class OpsController(Controller):
    tags = ["ops"]  # noqa: RUF012

    @get(
        "/health",
        responses={
            503: ResponseSpec(
                data_container=Health, description="A dependency is down", generate_examples=False
            )
        },
        summary="Redis and PostgreSQL reachability, write-behind lag",
    )
    async def health(self, request: Request[Any, Any, Any]) -> Response[Health]:
        state = _state(request)
        redis = await _timed(state.engine.redis.ping())
        postgres = None
        if state.pg_pool is not None:
            postgres = await _timed(state.pg_pool.fetchval("SELECT 1"))
        lags = await _lags(state) if redis.ok else None
        ok = redis.ok and (postgres is None or postgres.ok)
        body = Health(
            status="ok" if ok else "degraded",
            redis=redis,
            postgres=postgres,
            write_behind_lag=None if lags is None else sum(item.entries for item in lags),
        )
        return Response(content=body, status_code=200 if ok else 503)

    @get(
        "/metrics",
        media_type="text/plain; version=0.0.4; charset=utf-8",
        summary="Prometheus metrics of every worker",
        responses=problem_responses(401),
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """With FLASHSALE_METRICS_TOKEN: that bearer token only, every sale named.
        Without: public, naming only the sales already open to buyers."""
        state = _state(request)
        token = state.settings.api.metrics_token
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise Unauthenticated("/metrics needs the metrics token (Bearer)")
        lags = await _lags(state)
        named = None
        if token is None and lags:
            named = await asyncio.wait_for(
                announced(state.engine, [item.sale_id for item in lags]), CHECK_TIMEOUT_S
            )
        body, content_type = metrics.exposition(lags, named)
        return Response(content=body, media_type=content_type)

    @get(
        "/v1/sales/{sale_id:str}/audit",
        guards=[require_admin],
        security=[{"BearerAuth": []}],
        responses=problem_responses(400, 401, 403, 404, 503),
        summary="Audit a sale: Redis against PostgreSQL, and its money (admin)",
        description="`ok` is true exactly when `violations` is empty. 503 audit_unavailable "
        "when the server runs without PostgreSQL.",
    )
    async def audit(
        self,
        request: Request[Any, Any, Any],
        sale_id: FromPath[str],
        quick: Annotated[bool, QueryParameter(name="quick", required=False)] = False,
    ) -> AuditReport:
        """``?quick=true``: counters and server-side aggregates, without comparing every
        order (seconds rather than tens of seconds at a million orders)."""
        if not SALE_ID.match(sale_id):
            raise SaleNotFound()
        return await run_audit(_state(request), sale_id, deep=not quick)
