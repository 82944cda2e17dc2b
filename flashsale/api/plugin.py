"""One plugin wires the API: routes, error handlers, lifespan pools, protection.

litestar-fullstack's habit: ``create_app()`` stays small and this plugin
owns everything the application is made of.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol

from flashsale.api.config import ApiSettings
from flashsale.api.problems import exception_handler
from flashsale.api.ratelimit import IpRateLimiter, rate_limit_middleware
from flashsale.api.routes.bench import BenchController
from flashsale.api.routes.ops import OpsController
from flashsale.api.routes.orders import OrdersController
from flashsale.api.routes.payments import PaymentsController
from flashsale.api.routes.sales import SalesController
from flashsale.api.services import SaleStats, Services, SoldOutCache
from flashsale.api.tokens import TokenVerifier
from flashsale.engine.engine import Engine
from flashsale.engine.settings import Settings
from flashsale.payments.cli import payment_settings_from, providers_from
from flashsale.payments.service import PaymentService

PG_POOL_MAX = 10
"""Connections per worker: the payment flow holds one per step (a password check
holds its row lock across the hash), the audit and health one each."""

log = logging.getLogger("flashsale.api")

OPENAPI = OpenAPIConfig(
    title="flashsale",
    version="1.0.0",
    description="High-contention flash sales of NFT drops. Errors are application/problem+json "
    "with a stable `code`.",
    path="/schema",
    components=Components(
        security_schemes={
            "BearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
        }
    ),
)


async def check_durability(redis_url: str) -> int:
    """Check the server against FLASHSALE_DURABILITY; the replicas to WAIT for per batch.

    A server that does not deliver what the mode promises is reported loudly
    but never reconfigured from here (it may be shared); ``store.durability``
    can apply the mode.
    """
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from flashsale.store.durability import ensure_durability, mode_from_env

    mode = mode_from_env()
    client = Redis.from_url(redis_url, socket_connect_timeout=2, retry_on_error=[])
    try:
        state = await ensure_durability(client, mode)
    except (RedisError, OSError) as exc:
        # the API starts anyway (purchases answer 503 until Redis is back)
        log.warning("durability %s not checked: Redis did not answer (%s)", mode, exc)
        return 0
    finally:
        await client.aclose()
    for problem in state.problems:
        log.warning("durability %s not met: %s", mode, problem)
    return 1 if mode == "durable" and state.replicas > 0 else 0


class FlashsalePlugin(InitPluginProtocol):
    def __init__(
        self, settings: Settings, api: ApiSettings, *, engine: Engine | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.engine = engine

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [SalesController, OrdersController, PaymentsController, OpsController]
        )
        if self.api.bench_endpoints:
            app_config.route_handlers.append(BenchController)
        app_config.exception_handlers.update(
            {HTTPException: exception_handler, Exception: exception_handler}
        )
        app_config.lifespan.append(self.lifespan)
        if self.settings.ip_rate_per_s:
            app_config.middleware.append(rate_limit_middleware)
        app_config.openapi_config = OPENAPI
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        settings, api = self.settings, self.api
        engine = self.engine
        own_engine = engine is None
        if engine is None:
            if not settings.redis_url:
                raise RuntimeError("FLASHSALE_REDIS_URL is not set")
            wait_replicas = 0
            if not api.redis_cluster:
                wait_replicas = await check_durability(settings.redis_url)
            engine = Engine.from_url(
                settings.redis_url,
                namespace=settings.namespace,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                max_connections=api.redis_max_connections,
                cluster=api.redis_cluster,
                wait_replicas=wait_replicas,
            )
        pg_pool = None
        payments = None
        if settings.database_url:
            import asyncpg

            # min_size=0: a PostgreSQL outage must not stop the API from selling
            # (Redis is the authority); /health reports it.
            pg_pool = await asyncpg.create_pool(
                settings.database_url, min_size=0, max_size=PG_POOL_MAX
            )
            # As `flashsale timers` builds it (payments/cli.py open_service): providers
            # from FLASHSALE_PAYSIM_URL, callbacks to FLASHSALE_PUBLIC_URL (unset: the
            # server's own address, see Services.payment_service).
            payments = PaymentService(
                pg_pool, engine, providers_from(settings), payment_settings_from(settings)
            )
        services = Services(
            settings=settings,
            api=api,
            engine=engine,
            tokens=TokenVerifier(settings.jwt_secret, cache_size=api.token_cache_size),
            sold_out=SoldOutCache(api.sold_out_cache_s),
            stats=SaleStats(engine.redis, engine.namespace),
            pg_pool=pg_pool,
            payments=payments,
        )
        if settings.ip_rate_per_s and settings.redis_url:
            services.limiter = IpRateLimiter(engine, settings.ip_rate_per_s)
        app.state["services"] = services
        services.start()
        try:
            yield
        finally:
            await services.stop()
            if payments is not None:
                for provider in payments.providers.values():
                    with contextlib.suppress(Exception):
                        await provider.aclose()
            if pg_pool is not None:
                with contextlib.suppress(Exception):
                    await pg_pool.close()
            if own_engine:
                with contextlib.suppress(Exception):
                    await engine.aclose()
