"""``flashsale payments ...`` and ``flashsale timers``: configured by the environment alone.

Register in the top-level CLI with::

    from flashsale.payments import cli as payments_cli
    app.add_typer(payments_cli.app, name="payments")
    app.command("timers")(payments_cli.timers)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Annotated, cast, get_args

import asyncpg
import msgspec
import typer

from flashsale.engine.engine import Engine
from flashsale.engine.settings import Settings
from flashsale.payments.audit import money_audit
from flashsale.payments.failures import markdown_table
from flashsale.payments.models import RefundStatus
from flashsale.payments.provider import Provider, SimProvider
from flashsale.payments.refunds import Refunds
from flashsale.payments.service import PaymentService, PaymentSettings
from flashsale.payments.timers import Timers

app = typer.Typer(help="Payments: the timers, refund review, money audit.", no_args_is_help=True)


def providers_from(settings: Settings) -> dict[str, Provider]:
    if not settings.paysim_url:
        return {}
    return {"sim": SimProvider(settings.paysim_url, settings.paysim_secret)}


def payment_settings_from(settings: Settings) -> PaymentSettings:
    if settings.public_url:
        return PaymentSettings(public_url=settings.public_url)
    return PaymentSettings()


@contextlib.asynccontextmanager
async def open_service(settings: Settings | None = None) -> AsyncIterator[PaymentService]:
    settings = settings or Settings.from_env()
    if not settings.redis_url or not settings.database_url:
        raise typer.BadParameter("FLASHSALE_REDIS_URL and FLASHSALE_DATABASE_URL must be set")
    engine = Engine.from_url(
        settings.redis_url,
        namespace=settings.namespace,
        max_connections=settings.redis_max_connections,
    )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
    providers = providers_from(settings)
    try:
        yield PaymentService(pool, engine, providers, payment_settings_from(settings))
    finally:
        for provider in providers.values():
            await provider.aclose()
        await pool.close()
        await engine.aclose()


async def _run_timers(interval_s: float, once: bool) -> None:
    async with open_service() as service:
        timers = Timers(service, interval_s=interval_s)
        if once:
            stats = await timers.tick()
            typer.echo(msgspec.json.encode(_asdict(stats)).decode())
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        logging.getLogger("flashsale.payments").info("timers running every %.2f s", interval_s)
        await timers.run(stop)


def _asdict(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


def timers(
    interval: Annotated[float, typer.Option(help="Seconds between ticks when idle.")] = 0.5,
    once: Annotated[bool, typer.Option(help="Run one tick and exit.")] = False,
) -> None:
    """Expire unpaid orders (closing their trades), query lost callbacks, repair, retry refunds.

    Safe to run as several processes at once.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_run_timers(interval, once))


app.command("timers")(timers)


@app.command("refunds")
def list_refunds(
    status: Annotated[str | None, typer.Option(help="pending|approved|rejected|refunded")] = (
        "pending"
    ),
) -> None:
    """List refund requests (JSON lines)."""

    if status is not None and status not in get_args(RefundStatus):
        raise typer.BadParameter(f"status must be one of {', '.join(get_args(RefundStatus))}")
    wanted = cast(RefundStatus | None, status)

    async def run() -> None:
        async with open_service() as service:
            for refund in await Refunds(service).list(wanted):
                typer.echo(msgspec.json.encode(refund).decode())

    asyncio.run(run())


@app.command("approve")
def approve(refund_id: str, actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Approve a refund: the provider (or the wallet) pays it back, once."""

    async def run() -> None:
        async with open_service() as service:
            refund = await Refunds(service).approve(refund_id, actor)
            typer.echo(msgspec.json.encode(refund).decode())

    asyncio.run(run())


@app.command("reject")
def reject(refund_id: str, actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Reject a refund: the money is kept."""

    async def run() -> None:
        async with open_service() as service:
            refund = await Refunds(service).reject(refund_id, actor)
            typer.echo(msgspec.json.encode(refund).decode())

    asyncio.run(run())


@app.command("invalidate")
def invalidate(sale_id: str, reason: Annotated[str, typer.Option()] = "sale delisted") -> None:
    """Cancel every pending order of a sale (price changed, delisted); their trades close."""

    async def run() -> None:
        async with open_service() as service:
            cancelled = await service.invalidate_pending_orders(sale_id, reason)
            typer.echo(f"cancelled {len(cancelled)} pending orders")

    asyncio.run(run())


@app.command("audit")
def audit(sale_id: str) -> None:
    """Money audit of a sale: paid orders = captured payments - refunds."""

    async def run() -> int:
        async with open_service() as service:
            result = await money_audit(service.pool, sale_id, service.engine)
            typer.echo(msgspec.json.encode(result).decode())
            return 0 if result.ok else 1

    raise typer.Exit(asyncio.run(run()))


@app.command("failure-classes")
def failure_classes() -> None:
    """Print the failure classes as a Markdown table (for the README)."""
    typer.echo(markdown_table())
