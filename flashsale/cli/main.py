"""The ``flashsale`` command: one typer app, sub-apps per area.

    flashsale serve [--host H] [--port P] [--workers N] [--server granian|uvicorn]
    flashsale token --user U [--admin] [--ttl-s S]
    flashsale sale create | tune | status | watch
    flashsale admin sales | orders | serial | ledger | password | unlock-password | reset-password
    flashsale verify SALE
    flashsale paysim [--port P] [--fast-retries]
    flashsale demo
    flashsale persist | timers | audit SALE | recover | db upgrade
    flashsale chain [--port P] | deliver
    flashsale payments refunds | approve | reject | invalidate | audit
    flashsale config [--markdown [--dev]]

Configuration comes from the environment alone, read once into the one
``Settings`` object (flashsale/settings.py; ``flashsale config`` lists it).

Also mounted here: ``persist``, ``audit``, ``recover`` and ``db upgrade`` (store),
``timers`` and ``payments ...`` (payments); ``serve --with-workers`` supervises
the API, ``persist``, ``timers`` and a simulator (cli/supervisor.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from flashsale.chain import cli as chain_cli
from flashsale.cli import admin, sale
from flashsale.cli.boundary import ToolGroup
from flashsale.cli.serve import Server
from flashsale.connect import verify_durability
from flashsale.loadtest import cli as loadtest_cli
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments import cli as payments_cli
from flashsale.settings import (
    ConfigError,
    Settings,
    config_errors,
    effective_values,
    load_or_exit,
    markdown_table,
)
from flashsale.store import cli as store_cli

app = typer.Typer(
    name="flashsale",
    help="Flash sales of NFT drops: API server, ops tools.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=ToolGroup,  # every mistake is one line on stderr and an exit code (cli/boundary.py)
)
app.add_typer(sale.app, name="sale")
app.add_typer(admin.app, name="admin")  # sales, orders, serials, ledgers, passwords
store_cli.register(app)  # persist, audit, recover, db upgrade
payments_cli.register(app, bills=BillSettlement)  # timers, refund review, money audit, ...
loadtest_cli.register(app)  # loadtest drop|bots|browse, bench
chain_cli.register(app)  # chain (a local node), deliver


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(help="API worker processes (default: one per core).")] = 0,
    server: Annotated[
        Server | None, typer.Option(help="ASGI server (default: FLASHSALE_SERVER, granian).")
    ] = None,
    with_workers: Annotated[
        bool,
        typer.Option(
            "--with-workers",
            help="Also run the write-behind and the timers under the same supervisor.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (configuration from the environment)."""
    from flashsale.cli.serve import run_server

    # --with-workers starts a simulator when FLASHSALE_PAYSIM_URL is unset: a provider either way
    settings = load_or_exit("FLASHSALE_REDIS_URL", secrets=True, sim=with_workers)
    with config_errors():  # durable mode on a server that may lose writes: one line, exit 2
        asyncio.run(verify_durability(settings))
    kind = server or Server(settings.server.kind)
    if with_workers:
        if not settings.database.url:
            raise ConfigError("FLASHSALE_DATABASE_URL", "is not set (--with-workers needs it)")
        from flashsale.cli.supervisor import supervise

        raise typer.Exit(supervise(settings, host, port, workers or os.cpu_count() or 1, kind))
    count = workers or os.cpu_count() or 1
    run_server(kind, host, port, count, settings.log_format, settings.server)


@app.command()
def token(
    user: Annotated[str, typer.Option(help="User id (claim sub).")],
    admin: Annotated[bool, typer.Option("--admin", help="Add role: admin.")] = False,
    ttl_s: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 12 * 3600,
    json_out: Annotated[
        bool, typer.Option("--json", help='{"token", "sub", "admin", "ttl_s"}.')
    ] = False,
) -> None:
    """Mint a JWT signed with FLASHSALE_JWT_SECRET (outside dev mode: at least 32 bytes)."""
    from flashsale.api.tokens import mint_token

    with config_errors():
        secret = Settings.from_env().checked_jwt_secret()
    minted = mint_token(secret, user, admin=admin, ttl_s=ttl_s)
    if json_out:
        sale.print_json({"token": minted, "sub": user, "admin": admin, "ttl_s": ttl_s})
    else:
        typer.echo(minted)


@app.command()
def paysim(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8090,
    fast_retries: Annotated[
        bool, typer.Option("--fast-retries", help="Callback retries over seconds, not hours.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault draws.")] = None,
) -> None:
    """Run the payment-provider simulator (signed callbacks, switchable faults)."""
    from flashsale.payments.paysim.app import serve as serve_paysim
    from flashsale.payments.paysim.config import FAST_RETRY_SCHEDULE_S, PaysimConfig

    settings = load_or_exit(secrets=True, sim=True)
    secret = settings.payments.paysim_secret
    config = PaysimConfig(seed=seed, secret=secret)
    if fast_retries:
        config = PaysimConfig(seed=seed, secret=secret, retry_schedule_s=FAST_RETRY_SCHEDULE_S)
    serve_paysim(host, port, config.validated(), log_format=settings.log_format)


@app.command()
def verify(
    sale_id: Annotated[str, typer.Argument(help="A closed sale with random assignment.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every draw of a closed random sale from its revealed key; exit 1 on a mismatch."""
    from flashsale.engine.engine import Engine
    from flashsale.engine.verify import VerifyReport, verify_sale

    async def work(engine: Engine) -> VerifyReport:
        report: VerifyReport = await verify_sale(engine, sale_id)
        return report

    report = sale.run_with_engine(work)
    if json_out:
        sale.print_json(report)
    else:
        verdict = "OK" if report.ok else "MISMATCH"
        typer.echo(
            f"verify {report.sale_id}: {verdict}, {report.checked:,} draws checked, "
            f"{report.resold:,} released serials sold again"
            + (f" ({report.reason})" if report.reason else "")
        )
        for line in report.mismatches:
            typer.echo(f"  MISMATCH {line}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def config(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table of variables (the README's).")
    ] = False,
    dev: Annotated[
        bool, typer.Option("--dev", help="With --markdown: the development-only variables.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="The effective values as one JSON object.")
    ] = False,
) -> None:
    """Print the effective configuration (secrets masked), or the table of variables."""
    if markdown:
        typer.echo(markdown_table(dev_only=dev))
        return
    with config_errors():
        settings = Settings.from_env()
    values = effective_values(settings)
    if json_out:
        sale.print_json(dict(values))
        return
    for name, value in values:
        typer.echo(f"{name}={value}")


@app.command()
def errors(
    json_out: Annotated[
        bool, typer.Option("--json", help='[{"code", "status", "advice"}, ...].')
    ] = False,
) -> None:
    """Print the error-code reference (docs/errors.md): every code, its status, what to do."""
    from flashsale.api.problems import error_classes, error_reference

    if json_out:
        sale.print_json(
            [
                {"code": cls.code, "status": cls.status, "advice": cls.advice}
                for cls in sorted(error_classes(), key=lambda c: (c.status, c.code))
            ]
        )
        return
    typer.echo(error_reference(), nl=False)


@app.command()
def demo(
    buyers: Annotated[int, typer.Option(help="Distinct buyers.")] = 2000,
    attempts: Annotated[int, typer.Option(help="Purchase attempts in the burst.")] = 5000,
    serials: Annotated[int, typer.Option(help="Serials in the drop.")] = 1000,
    payment_timeout: Annotated[
        int, typer.Option(min=5, help="Seconds an order waits for its payment.")
    ] = 60,
    logs_dir: Annotated[
        Path | None, typer.Option(help="Where the run's log file goes (loadtest/reports).")
    ] = None,
    cluster: Annotated[
        bool,
        typer.Option(help="On an embedded 3-master Redis Cluster (FLASHSALE_REDIS_CLUSTER=1)."),
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(min=1, help="Locust processes of the burst (default: one per core)."),
    ] = None,
) -> None:
    """A whole drop on one machine, told as a short story (embedded servers unless
    FLASHSALE_*_URL are set); the servers' logs go to the file it names."""
    from flashsale.loadtest.demo import main as run_demo

    raise typer.Exit(
        run_demo(
            buyers=buyers,
            attempts=attempts,
            serials=serials,
            payment_timeout_s=payment_timeout,
            logs_dir=logs_dir,
            cluster=cluster,
            processes=processes,
        )
    )


if __name__ == "__main__":
    app()
