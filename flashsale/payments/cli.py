"""``flashsale payments ...`` and ``flashsale timers``: configured by the ``Settings``.

Register in the top-level CLI with ``register(app, bills=BillSettlement)``: the settler of
bill payments lives in ``flashsale/orders``, above payments, so it is handed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar, cast, get_args

import msgspec
import typer

from flashsale import logs
from flashsale.connect import open_engine, open_pool
from flashsale.payments.audit import money_audit
from flashsale.payments.failures import TABLE, markdown_table
from flashsale.payments.models import MoneyAudit, Refund, RefundStatus
from flashsale.payments.refunds import RefundOutcome, Refunds, outcome
from flashsale.payments.service import PaymentService
from flashsale.payments.settlement import BillPaymentsFactory
from flashsale.payments.setup import PROVIDER_URLS, close_providers, payment_service
from flashsale.payments.timers import Timers
from flashsale.settings import ConfigError, Settings, config_errors, load_or_exit
from flashsale.telemetry.exporter import export
from flashsale.telemetry.workers import TIMERS

app = typer.Typer(help="Payments: the timers, refund review, money audit.", no_args_is_help=True)

NEEDS = ("FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL")
T = TypeVar("T")


@dataclasses.dataclass
class _Wiring:
    """What the top-level CLI hands in at ``register`` (None until then: no bills)."""

    bills: BillPaymentsFactory | None = None


_WIRING = _Wiring()


def register(app_: typer.Typer, bills: BillPaymentsFactory) -> None:
    """``flashsale payments ...`` and ``flashsale timers``, settling bills with ``bills``."""
    _WIRING.bills = bills
    app_.add_typer(app, name="payments")  # refund review, money audit, ...
    app_.command("timers")(timers)


@contextlib.asynccontextmanager
async def open_service(settings: Settings, *, tool: bool = True) -> AsyncIterator[PaymentService]:
    """The payment flow on an engine and a pool of its own, closed afterwards."""
    settings.require(*NEEDS)
    async with contextlib.AsyncExitStack() as stack:
        engine = await open_engine(settings, tool=tool)
        stack.push_async_callback(engine.aclose)
        pool = await open_pool(settings)
        stack.push_async_callback(pool.close)
        service = payment_service(settings, pool, engine, _WIRING.bills)
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


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _json(value: object) -> None:
    typer.echo(msgspec.json.encode(value).decode())


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


async def _run_timers(settings: Settings, interval_s: float, once: bool, json_out: bool) -> None:
    async with open_service(settings, tool=False) as service:
        timers = Timers(service, interval_s=interval_s)
        if once:
            stats = _asdict(await timers.tick())
            if json_out:
                _json(stats)
            else:
                typer.echo("timers tick: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        logging.getLogger("flashsale.payments").info("timers running every %.2f s", interval_s)
        with TIMERS.watching(timers.totals):
            await timers.run(stop)


def _asdict(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


def timers(
    interval: Annotated[float, typer.Option(help="Seconds between ticks when idle.")] = 0.5,
    once: Annotated[bool, typer.Option(help="Run one tick and exit.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
) -> None:
    """Expire unpaid orders (closing their trades), query lost callbacks, repair, retry refunds.

    Safe to run as several processes at once.
    """
    settings = load_or_exit(*NEEDS, secrets=True)
    logs.configure("timers", settings.log_format)
    with config_errors():
        if not once:
            metrics = settings.metrics
            export(metrics.timers_port, metrics.host, "FLASHSALE_TIMERS_METRICS_PORT", TIMERS)
        asyncio.run(_run_timers(settings, interval, once, json_out))


app.command("timers")(timers)


def _refund_line(refund: Refund) -> str:
    line = (
        f"{refund.refund_id}  {refund.status:<8}  {_money(refund.amount_cents, refund.currency)}"
        f"  order={refund.order_id}  via={refund.method}  reason={refund.reason}"
        f"  created={refund.created_at.isoformat(timespec='seconds')}"
    )
    return line + (f"  last_error={refund.last_error!r}" if refund.last_error else "")


@app.command("refunds")
def list_refunds(
    status: Annotated[str | None, typer.Option(help="pending|approved|rejected|refunded")] = (
        "pending"
    ),
    json_out: JsonOption = False,
) -> None:
    """List refund requests (one line each; --json: a JSON array)."""

    if status is not None and status not in get_args(RefundStatus):
        raise typer.BadParameter(f"status must be one of {', '.join(get_args(RefundStatus))}")
    wanted = cast(RefundStatus | None, status)

    async def work(service: PaymentService) -> list[Refund]:
        found: list[Refund] = await Refunds(service).list(wanted)
        return found

    refunds = _run(work)
    if json_out:
        _json(refunds)
        return
    for refund in refunds:
        typer.echo(_refund_line(refund))
    if not refunds:
        typer.echo(f"no {status or ''} refunds".replace("  ", " "))


class Decided(msgspec.Struct, kw_only=True):
    refund: Refund
    outcome: RefundOutcome


def _say_decided(decided: Decided) -> None:
    refund, amount = decided.refund, _money(decided.refund.amount_cents, decided.refund.currency)
    via = "the buyer's wallet" if refund.method == "balance" else "the provider"
    said = {
        "executed": f"executed: {amount} sent back through {via}",
        "queued": f"queued: not sent yet ({refund.last_error or 'in progress'}); the timers "
        "send it when they can",
        "refused": f"NOT executed: the provider refused it ({refund.last_error}); "
        "an operator must look at it",
        "rejected": f"rejected: {amount} kept",
        "pending": "still pending",
    }[decided.outcome]
    typer.echo(f"refund {refund.refund_id} {refund.status}, {said}")


async def _reachable(service: PaymentService, refund_id: str) -> None:
    """Refuse before deciding when this process cannot reach the refund's provider."""
    provider = await Refunds(service).provider_of(refund_id)
    if provider is not None and provider not in service.providers:
        variable = PROVIDER_URLS.get(provider, "the provider's URL")
        raise ConfigError(
            variable,
            f"is not set: refund {refund_id} goes back through the provider {provider!r}; "
            "set it to the provider's address (`serve --with-workers` prints its simulator's)",
        )


def _decision(
    decide: Callable[[Refunds, str, str], Awaitable[Refund]],
    refund_id: str,
    actor: str,
    json_out: bool,
) -> None:
    async def work(service: PaymentService) -> Decided:
        await _reachable(service, refund_id)
        refund = await decide(Refunds(service), refund_id, actor)
        return Decided(refund=refund, outcome=outcome(refund))

    decided = _run(work)
    if json_out:
        _json(decided)
    else:
        _say_decided(decided)
    if decided.outcome == "refused":
        raise typer.Exit(1)


@app.command("approve")
def approve(
    refund_id: str, actor: Annotated[str, typer.Option()] = "cli", json_out: JsonOption = False
) -> None:
    """Approve a refund: the provider (or the wallet) pays it back, once.

    Says whether the money was sent (executed) or waits for the timers (queued,
    e.g. the provider did not answer); exit 1 when the provider refused it.
    """
    _decision(lambda refunds, rid, who: refunds.approve(rid, who), refund_id, actor, json_out)


@app.command("reject")
def reject(
    refund_id: str, actor: Annotated[str, typer.Option()] = "cli", json_out: JsonOption = False
) -> None:
    """Reject a refund: the money is kept."""
    _decision(lambda refunds, rid, who: refunds.reject(rid, who), refund_id, actor, json_out)


@app.command("invalidate")
def invalidate(
    sale_id: str,
    reason: Annotated[str, typer.Option()] = "sale delisted",
    json_out: JsonOption = False,
) -> None:
    """Cancel every pending order of a sale (price changed, delisted); their trades close.

    Reports page by page as it goes (with --json: one line per page, then the total),
    so a sale with a million pending orders never builds one answer of them all."""

    async def work(service: PaymentService) -> int:
        await service.engine.get_sale(sale_id)  # sale_not_found for a typo
        total = 0
        async for cancelled in service.invalidate_pending_orders(sale_id, reason):
            total += len(cancelled)
            if json_out:
                _json({"sale_id": sale_id, "cancelled": cancelled})
            else:
                typer.echo(f"cancelled {len(cancelled)} pending orders of sale {sale_id}")
        return total

    total = _run(work)
    if json_out:
        _json({"sale_id": sale_id, "total": total})
    else:
        typer.echo(f"cancelled {total} pending orders of sale {sale_id} in all")


@app.command("audit")
def audit(sale_id: str, json_out: JsonOption = False) -> None:
    """Money audit of a sale: paid orders = captured payments - refunds; exit 1 on a violation."""

    async def work(service: PaymentService) -> MoneyAudit:
        await service.engine.get_sale(sale_id)  # sale_not_found for a typo
        return await money_audit(service.pool, sale_id, service.engine)

    result = _run(work)
    if json_out:
        _json(result)
    else:
        verdict = "OK" if result.ok else "VIOLATIONS"
        typer.echo(
            f"money audit of sale {sale_id}: {verdict}\n"
            f"  paid orders {result.paid_orders} = "
            f"{_money(result.paid_orders_cents, '')}\n"
            f"  captured {_money(result.captured_cents, '')} - refunds "
            f"{_money(result.refunds_cents, '')} - retained {_money(result.retained_cents, '')}\n"
            f"  payments {result.payments}, refunds pending {result.refunds_pending}, "
            f"unsettled {result.unsettled}"
        )
        for violation in result.violations:
            typer.echo(f"  VIOLATION {violation}")
    raise typer.Exit(0 if result.ok else 1)


@app.command("failure-classes")
def failure_classes(
    json_out: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
) -> None:
    """Print the failure classes as a Markdown table (for the README)."""
    if json_out:
        _json(
            [
                {"class": failure.value, **dataclasses.asdict(info)}
                for failure, info in TABLE.items()
            ]
        )
        return
    typer.echo(markdown_table())
