"""The ``flashsale`` command: one typer app, sub-apps per area.

    flashsale serve [--host H] [--port P] [--workers N] [--server granian|uvicorn]
    flashsale token --user U [--admin] [--ttl-s S]
    flashsale sale create | tune | status | watch
    flashsale demo                      (the lead's; slot kept)

Configuration comes from the environment alone (FLASHSALE_REDIS_URL,
FLASHSALE_DATABASE_URL, FLASHSALE_JWT_SECRET, FLASHSALE_NAMESPACE, ...).

TODO(store): mount ``flashsale.store.cli`` (``persist``, ``db upgrade``,
``audit SALE``) with ``app.add_typer`` once it is on main, and make
``serve --with-workers`` supervise ``persist`` (and ``timers``) next to the
API. TODO(payments): mount ``paysim --port`` (flashsale.payments.paysim.app.serve).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from flashsale.cli import sale
from flashsale.cli.serve import Server
from rich.console import Console

app = typer.Typer(
    name="flashsale",
    help="Flash sales of NFT drops: API server, ops tools.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sale.app, name="sale")
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

    if with_workers:
        # TODO(store, timers): supervise `flashsale persist` and `flashsale timers` here once
        # they exist on main; refusing is better than silently serving without them.
        err.print("[red]--with-workers needs the write-behind and timers, not in this build[/red]")
        raise typer.Exit(2)
    if not os.environ.get("FLASHSALE_REDIS_URL"):
        err.print("[red]FLASHSALE_REDIS_URL is not set[/red]")
        raise typer.Exit(2)
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
def demo() -> None:
    """End-to-end demo on embedded servers (slot kept for the lead's implementation)."""
    # TODO(lead): the demo body (embedded Redis+PostgreSQL, serve, create, buy, watch).
    err.print("[yellow]the demo is not in this build yet[/yellow]")
    raise typer.Exit(2)


if __name__ == "__main__":
    app()
