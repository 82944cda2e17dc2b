"""``flashsale payments ...`` and ``flashsale timers``: configured by the ``Settings``.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar, cast, get_args

import msgspec
import typer

from flashsale.connect import open_engine, open_pool
from flashsale.payments.audit import money_audit
from flashsale.payments.failures import markdown_table
from flashsale.payments.models import RefundStatus
from flashsale.payments.refunds import Refunds
from flashsale.payments.service import PaymentService
from flashsale.payments.setup import close_providers, payment_service
from flashsale.payments.timers import Timers
from flashsale.settings import Settings, config_errors, load_or_exit

app = typer.Typer(help="Payments: the timers, refund review, money audit.", no_args_is_help=True)

NEEDS = ("FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL")
T = TypeVar("T")


@contextlib.asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[PaymentService]:
    """The payment flow on an engine and a pool of its own, closed afterwards."""
    settings.require(*NEEDS)
    async with contextlib.AsyncExitStack() as stack:
        engine = await open_engine(settings)
        stack.push_async_callback(engine.aclose)
        pool = await open_pool(settings)
        stack.push_async_callback(pool.close)
        service = payment_service(settings, pool, engine)
        stack.push_async_callback(close_providers, service)
        yield service


def _run(work: Callable[[PaymentService], Awaitable[T]]) -> T:
    """One command's work on the payment flow: configuration mistakes exit 2 in one line."""
    settings = load_or_exit(*NEEDS)

    async def main() -> T:
        async with open_service(settings) as service:
            return await work(service)

    with config_errors():
        return asyncio.run(main())


async def _run_timers(settings: Settings, interval_s: float, once: bool) -> None:
    async with open_service(settings) as service:
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
    settings = load_or_exit(*NEEDS, secrets=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with config_errors():
        asyncio.run(_run_timers(settings, interval, once))


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

    async def work(service: PaymentService) -> None:
        for refund in await Refunds(service).list(wanted):
            typer.echo(msgspec.json.encode(refund).decode())

    _run(work)


@app.command("approve")
def approve(refund_id: str, actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Approve a refund: the provider (or the wallet) pays it back, once."""

    async def work(service: PaymentService) -> None:
        refund = await Refunds(service).approve(refund_id, actor)
        typer.echo(msgspec.json.encode(refund).decode())

    _run(work)


@app.command("reject")
def reject(refund_id: str, actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Reject a refund: the money is kept."""

    async def work(service: PaymentService) -> None:
        refund = await Refunds(service).reject(refund_id, actor)
        typer.echo(msgspec.json.encode(refund).decode())

    _run(work)


@app.command("invalidate")
def invalidate(sale_id: str, reason: Annotated[str, typer.Option()] = "sale delisted") -> None:
    """Cancel every pending order of a sale (price changed, delisted); their trades close."""

    async def work(service: PaymentService) -> None:
        cancelled = await service.invalidate_pending_orders(sale_id, reason)
        typer.echo(f"cancelled {len(cancelled)} pending orders")

    _run(work)


@app.command("audit")
def audit(sale_id: str) -> None:
    """Money audit of a sale: paid orders = captured payments - refunds."""

    async def work(service: PaymentService) -> int:
        result = await money_audit(service.pool, sale_id, service.engine)
        typer.echo(msgspec.json.encode(result).decode())
        return 0 if result.ok else 1

    raise typer.Exit(_run(work))


@app.command("failure-classes")
def failure_classes() -> None:
    """Print the failure classes as a Markdown table (for the README)."""
    typer.echo(markdown_table())
