"""The payment-provider simulator as a Litestar app, and a foreground server for it.

Routes (JSON; errors are `{"code", "detail"}`):

    GET  /health                      liveness and the fault seed
    POST /trades                      open a trade (idempotent per out_trade_no): 201, replay 200
    GET  /trades/{trade_no}           query (subject to query_fail_rate / query_delay_s)
    POST /trades/{trade_no}/pay       the buyer pays (the trade's pay_url)
    POST /trades/{trade_no}/close     close an unpaid trade
    POST /trades/{trade_no}/refunds   refund once per refund_no
    GET|PUT        /faults            global faults
    GET|PUT|DELETE /trades/{trade_no}/faults   one trade's override
    GET  /stats                       counters
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import httpx
import uvicorn
from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException

from flashsale import logs
from flashsale.settings import LogFormat

from ..signing import DEV_SECRET
from .config import PaysimConfig
from .faults import Faults
from .notifier import Notifier
from .state import PaysimState, SimError
from .wire import (
    CreateTrade,
    ErrorBody,
    FaultsView,
    Health,
    RefundRequest,
    Stats,
    TradeView,
)

__all__ = ["PaysimConfig", "create_app", "serve"]

log = logging.getLogger("flashsale.paysim")


def _sim(state: State) -> PaysimState:
    return cast(PaysimState, state.sim)


def _notifier(state: State) -> Notifier:
    return cast(Notifier, state.notifier)


@get("/health", sync_to_thread=False)
def health(sim: PaysimState) -> Health:
    return Health(status="ok", seed=sim.seed)


@post("/trades", sync_to_thread=False)
def create_trade(
    data: CreateTrade, request: Request[object, object, State], sim: PaysimState
) -> Response[TradeView]:
    config = cast(PaysimConfig, request.app.state.config)
    base_url = config.public_url or str(request.base_url)
    trade, created = sim.create(data, base_url)
    return Response(trade, status_code=201 if created else 200)


@get("/trades/{trade_no:str}")
async def query_trade(trade_no: str, sim: PaysimState) -> TradeView:
    delay_s, fail = sim.query_faults(trade_no)
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    if fail:
        raise SimError(503, "service_unavailable", "injected query failure")
    return sim.query(trade_no)


@post("/trades/{trade_no:str}/pay", status_code=200, sync_to_thread=False)
def pay_trade(trade_no: str, sim: PaysimState, notifier: Notifier) -> TradeView:
    trade, job = sim.pay(trade_no)
    if job is not None:
        notifier.submit(job)
    return trade


@post("/trades/{trade_no:str}/close", status_code=200, sync_to_thread=False)
def close_trade(trade_no: str, sim: PaysimState) -> TradeView:
    return sim.close(trade_no)


@post("/trades/{trade_no:str}/refunds", status_code=200, sync_to_thread=False)
def refund_trade(trade_no: str, data: RefundRequest, sim: PaysimState) -> TradeView:
    return sim.refund(trade_no, data)


@get("/faults", sync_to_thread=False)
def get_faults(sim: PaysimState) -> Faults:
    return sim.faults


@put("/faults", sync_to_thread=False)
def put_faults(data: Faults, sim: PaysimState) -> Faults:
    sim.faults = data
    log.info("global faults set to %s", data)
    return data


@get("/trades/{trade_no:str}/faults", sync_to_thread=False)
def get_trade_faults(trade_no: str, sim: PaysimState) -> FaultsView:
    return sim.trade_faults(trade_no)


@put("/trades/{trade_no:str}/faults", sync_to_thread=False)
def put_trade_faults(trade_no: str, data: Faults, sim: PaysimState) -> FaultsView:
    return sim.set_trade_faults(trade_no, data)


@delete("/trades/{trade_no:str}/faults", status_code=200, sync_to_thread=False)
def delete_trade_faults(trade_no: str, sim: PaysimState) -> FaultsView:
    return sim.set_trade_faults(trade_no, None)


@get("/stats", sync_to_thread=False)
def stats(sim: PaysimState) -> Stats:
    return sim.stats


_HTTP_CODES = {
    400: "validation_error",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _sim_error(_: Request[object, object, State], exc: SimError) -> Response[ErrorBody]:
    return Response(ErrorBody(code=exc.code, detail=exc.detail), status_code=exc.status)


def _http_error(_: Request[object, object, State], exc: HTTPException) -> Response[ErrorBody]:
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        problems = [f"{e.get('key')}: {e.get('message')}" for e in exc.extra if isinstance(e, dict)]
        detail = f"{detail}: {'; '.join(problems)}"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return Response(ErrorBody(code=code, detail=detail), status_code=exc.status_code)


def _internal_error(_: Request[object, object, State], exc: Exception) -> Response[ErrorBody]:
    log.error("unhandled error", exc_info=exc)
    return Response(ErrorBody(code="internal_error"), status_code=500)


def create_app(config: PaysimConfig | None = None) -> Litestar:
    """Build a simulator app. State is in memory: serve it with exactly one worker."""
    config = (config or PaysimConfig()).validated()
    seed = config.seed if config.seed is not None else secrets.randbits(32)
    sim = PaysimState(seed=seed, faults=config.faults)
    secret = config.secret or DEV_SECRET

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # trust_env=False: callbacks go where the merchant said, never via an env proxy.
        async with httpx.AsyncClient(
            timeout=config.callback_timeout_s, trust_env=False, follow_redirects=False
        ) as client:
            notifier = Notifier(
                client=client,
                secret=secret,
                schedule=config.retry_schedule_s,
                duplicate_after_s=config.duplicate_after_s,
                stats=sim.stats,
            )
            app.state.notifier = notifier
            try:
                yield
            finally:
                await notifier.aclose()

    return Litestar(
        route_handlers=[
            health,
            create_trade,
            query_trade,
            pay_trade,
            close_trade,
            refund_trade,
            get_faults,
            put_faults,
            get_trade_faults,
            put_trade_faults,
            delete_trade_faults,
            stats,
        ],
        dependencies={
            "sim": Provide(_sim, sync_to_thread=False),
            "notifier": Provide(_notifier, sync_to_thread=False),
        },
        exception_handlers={
            SimError: _sim_error,
            HTTPException: _http_error,
            500: _internal_error,
        },
        lifespan=[lifespan],
        state=State({"sim": sim, "config": config}),
    )


def serve(
    host: str, port: int, config: PaysimConfig | None = None, *, log_format: LogFormat = "text"
) -> None:
    """Run the simulator in the foreground until interrupted (one worker: state is in memory).

    Logs in the one format (flashsale/logs.py); httpx's line per request is quiet: one
    line per callback attempt is the notifier's job.
    """
    logs.configure("paysim", log_format)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="info",
        log_config=logs.server_log_config("paysim", log_format),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
