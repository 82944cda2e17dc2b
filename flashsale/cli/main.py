"""The ``flashsale`` command: one typer app, sub-apps per area.

    flashsale serve [--host H] [--port P] [--workers N] [--server granian|uvicorn]
    flashsale token --user U [--admin] [--ttl-s S]
    flashsale sale create | tune | status | watch
    flashsale verify SALE
    flashsale paysim [--port P] [--fast-retries]
    flashsale demo
    flashsale persist | timers | audit SALE | recover | db upgrade
    flashsale payments refunds | approve | reject | invalidate | audit

Configuration comes from the environment alone (FLASHSALE_REDIS_URL,
FLASHSALE_DATABASE_URL, FLASHSALE_JWT_SECRET, FLASHSALE_NAMESPACE, ...).

Also mounted here: ``persist``, ``audit``, ``recover`` and ``db upgrade`` (store),
``timers`` and ``payments ...`` (payments); ``serve --with-workers`` supervises
the API, ``persist``, ``timers`` and a simulator (cli/supervisor.py).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from flashsale.cli import sale
from flashsale.cli.serve import Server
from flashsale.loadtest import cli as loadtest_cli
from flashsale.payments import cli as payments_cli
from flashsale.store import cli as store_cli

app = typer.Typer(
    name="flashsale",
    help="Flash sales of NFT drops: API server, ops tools.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sale.app, name="sale")
store_cli.register(app)  # persist, audit, recover, db upgrade
app.add_typer(payments_cli.app, name="payments")  # refund review, money audit, ...
app.command("timers")(payments_cli.timers)
loadtest_cli.register(app)  # loadtest drop|bots|browse, bench
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(help="API worker processes (default: one per core).")] = 0,
    server: Annotated[Server, typer.Option(help="ASGI server.")] = Server.granian,
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

    if not os.environ.get("FLASHSALE_REDIS_URL"):
        err.print("[red]FLASHSALE_REDIS_URL is not set[/red]")
        raise typer.Exit(2)
    if with_workers:
        if not os.environ.get("FLASHSALE_DATABASE_URL"):
            err.print("[red]--with-workers needs FLASHSALE_DATABASE_URL[/red]")
            raise typer.Exit(2)
        from flashsale.cli.supervisor import supervise

        raise typer.Exit(supervise(host, port, workers or os.cpu_count() or 1, server.value))
    run_server(server, host, port, workers or os.cpu_count() or 1)


@app.command()
def token(
    user: Annotated[str, typer.Option(help="User id (claim sub).")],
    admin: Annotated[bool, typer.Option("--admin", help="Add role: admin.")] = False,
    ttl_s: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 12 * 3600,
) -> None:
    """Mint a dev JWT signed with FLASHSALE_JWT_SECRET."""
    from flashsale.api.tokens import mint_token
    from flashsale.engine.settings import Settings

    typer.echo(mint_token(Settings.from_env().jwt_secret, user, admin=admin, ttl_s=ttl_s))


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

    config = PaysimConfig(seed=seed)
    if fast_retries:
        config = PaysimConfig(seed=seed, retry_schedule_s=FAST_RETRY_SCHEDULE_S)
    serve_paysim(host, port, config.validated())


@app.command()
def verify(
    sale_id: Annotated[str, typer.Argument(help="A closed sale with random assignment.")],
) -> None:
    """Recompute every draw of a closed random sale from its revealed key."""
    import asyncio

    import msgspec

    from flashsale.engine.verify import verify_sale
    from flashsale.errors import FlashsaleError

    async def run() -> bool:
        engine = sale.engine_from_env()
        try:
            report = await verify_sale(engine, sale_id)
        finally:
            await engine.aclose()
        typer.echo(msgspec.json.format(msgspec.json.encode(report)).decode())
        return bool(report.ok)

    try:
        ok = asyncio.run(run())
    except FlashsaleError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc.detail}")
        raise typer.Exit(1) from None
    raise typer.Exit(0 if ok else 1)


@app.command()
def errors() -> None:
    """Print the error-code reference (docs/errors.md): every code, its status, what to do."""
    from flashsale.api.problems import error_reference

    typer.echo(error_reference(), nl=False)


@app.command()
def demo(
    buyers: Annotated[int, typer.Option(help="Distinct buyers.")] = 2000,
    attempts: Annotated[int, typer.Option(help="Purchase attempts in the burst.")] = 5000,
    serials: Annotated[int, typer.Option(help="Serials in the drop.")] = 1000,
) -> None:
    """A whole drop on one machine (embedded servers unless FLASHSALE_*_URL are set)."""
    from flashsale.loadtest.demo import main as run_demo

    raise typer.Exit(run_demo(buyers=buyers, attempts=attempts, serials=serials))


if __name__ == "__main__":
    app()
