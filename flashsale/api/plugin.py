"""One plugin wires the API: routes, error handlers, lifespan pools, protection.

litestar-fullstack's habit: ``create_app()`` stays small and this plugin
owns everything the application is made of.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol

from flashsale.api.clientip import ClientAddress
from flashsale.api.console import console_routes
from flashsale.api.openapi_exact import exact
from flashsale.api.problems import exception_handler
from flashsale.api.ratelimit import IpRateLimiter, rate_limit_middleware
from flashsale.api.routes.admin import AdminController
from flashsale.api.routes.aftersales import AfterSalesController
from flashsale.api.routes.bench import BenchController
from flashsale.api.routes.bills import BillsController
from flashsale.api.routes.buyagain import BuyAgainController
from flashsale.api.routes.chain import ChainController
from flashsale.api.routes.checkout import CheckoutsController
from flashsale.api.routes.ops import OpsController
from flashsale.api.routes.orders import OrdersController
from flashsale.api.routes.payments import PaymentsController
from flashsale.api.routes.sales import SalesController
from flashsale.api.schema_ui import OfflineSwagger, schema_assets
from flashsale.api.state import AppState, SaleStats, SoldOutCache
from flashsale.api.tokens import TokenVerifier
from flashsale.connect import need, open_engine, open_pool
from flashsale.engine.engine import Engine
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.setup import close_providers, payment_service
from flashsale.settings import Settings

OPENAPI = OpenAPIConfig(
    title="flashsale",
    version="1.0.0",
    description="High-contention flash sales of NFT drops. Errors are application/problem+json "
    "with a stable `code`.",
    path="/schema",
    render_plugins=[OfflineSwagger()],  # its assets from the package (api/schema_ui.py)
    components=Components(
        security_schemes={
            "BearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
        }
    ),
)


class FlashsalePlugin(InitPluginProtocol):
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [
                SalesController,
                OrdersController,
                PaymentsController,
                OpsController,
                AdminController,
                ChainController,
                CheckoutsController,
                BillsController,
                AfterSalesController,
                BuyAgainController,
                schema_assets(),
                console_routes(),
            ]
        )
        if self.settings.api.bench_endpoints:
            app_config.route_handlers.append(BenchController)
        app_config.exception_handlers.update(
            {HTTPException: exception_handler, Exception: exception_handler}
        )
        app_config.lifespan.append(self.lifespan)
        app_config.on_startup.append(exact)  # the OpenAPI document says what the server does
        if self.settings.api.ip_rate_per_s:
            app_config.middleware.append(rate_limit_middleware)
        app_config.openapi_config = OPENAPI
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        settings = self.settings
        tokens = TokenVerifier(
            need(settings.jwt_secret, "FLASHSALE_JWT_SECRET"),
            cache_size=settings.api.token_cache_size,
        )
        engine = self.engine
        own_engine = engine is None
        if engine is None:
            engine = await open_engine(settings)
        pg_pool = None
        payments = None
        if settings.database.url:
            # min_size=0: a PostgreSQL outage must not stop the API from selling
            # (Redis is the authority); /health reports it.
            pg_pool = await open_pool(settings, min_size=0)
            # As `flashsale timers` builds it (payments/setup.py); callbacks to
            # FLASHSALE_PUBLIC_URL (unset: the server's own address, see
            # AppState.payment_service).
            payments = payment_service(settings, pg_pool, engine, BillSettlement)
        state = AppState(
            settings=settings,
            engine=engine,
            tokens=tokens,
            sold_out=SoldOutCache(settings.api.sold_out_cache_s),
            stats=SaleStats(engine.redis, engine.namespace),
            pg_pool=pg_pool,
            payments=payments,
            client_ip=ClientAddress(settings.api.trusted_proxies),
        )
        rate = settings.api.ip_rate_per_s
        if rate:
            state.limiter = IpRateLimiter(engine, rate)
        app.state["app_state"] = state
        state.start()
        try:
            yield
        finally:
            await state.stop()
            if payments is not None:
                await close_providers(payments)
            if pg_pool is not None:
                with contextlib.suppress(Exception):
                    await pg_pool.close()
            if own_engine:
                with contextlib.suppress(Exception):
                    await engine.aclose()
