"""CLI of delivery on chain: ``flashsale chain`` (a local node) and ``flashsale deliver``.

Mount with ``register(app)``. ``deliver --retry ORDER_ID`` and ``deliver --given-up``
are the operator's (FLASHSALE_DATABASE_URL only). ``deliver`` needs FLASHSALE_DATABASE_URL,
FLASHSALE_REDIS_URL and FLASHSALE_CHAIN_URL (and, outside dev mode,
FLASHSALE_CHAIN_KEY); FLASHSALE_CHAIN_* tune it. Imports are late: every other
command would pay for web3's.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from typing import Annotated, Any

import typer

from flashsale import logs
from flashsale.settings import config_errors, load_or_exit


def deliver(
    retry: Annotated[
        str | None,
        typer.Option(
            "--retry",
            metavar="ORDER_ID",
            help="Deliver again a delivery the deliverer gave up, then exit (the running "
            "deliverer mints it, after checking the chain).",
        ),
    ] = None,
    given_up: Annotated[
        bool,
        typer.Option("--given-up", help="List the deliveries given up (JSON lines), then exit."),
    ] = False,
) -> None:
    """Mint each paid order's token to its buyer's address (FLASHSALE_CHAIN_*)."""
    if retry is not None or given_up:
        _desk(retry, given_up)
        return
    from flashsale.chain.service import NEEDS, run_deliver
    from flashsale.telemetry.exporter import export
    from flashsale.telemetry.workers import DELIVER

    settings = load_or_exit(*NEEDS, secrets=True)
    logs.configure("deliver", settings.log_format)
    with config_errors():
        metrics = settings.metrics
        export(metrics.deliver_port, metrics.host, "FLASHSALE_DELIVER_METRICS_PORT", DELIVER)
        raise typer.Exit(asyncio.run(run_deliver(settings)))


def _desk(retry: str | None, given_up: bool) -> None:
    """The operator's side (``chain/redeliver.py``): needs FLASHSALE_DATABASE_URL only."""
    import msgspec

    from flashsale.chain import redeliver
    from flashsale.connect import open_pool

    settings = load_or_exit("FLASHSALE_DATABASE_URL")

    async def work() -> list[Any]:
        pool = await open_pool(settings, max_size=2)
        try:
            if retry is not None:
                return [await redeliver.redeliver(pool, retry, "cli")]
            return list(await redeliver.given_up(pool, 500))
        finally:
            await pool.close()

    with config_errors():
        for item in asyncio.run(work()):
            print(msgspec.json.encode(item).decode(), flush=True)


def chain(
    port: Annotated[int, typer.Option(help="Port to bind on 127.0.0.1 (0: a free one).")] = 8545,
    block_ms: Annotated[
        int, typer.Option(help="Also mine a block this often (ms); 0: only per transaction.")
    ] = 1000,
) -> None:
    """Run a local development chain (hardhat's node) until stopped.

    The first line printed is one JSON object: {"rpc_url", "chain_id", "dev_key"}
    (a funded development key)."""
    from flashsale.devservers.chain import EmbeddedChain

    stopped = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with EmbeddedChain(port=port or None, block_ms=block_ms) as node:
        line = {"rpc_url": node.url, "chain_id": node.chain_id, "dev_key": node.dev_key}
        print(json.dumps(line), flush=True)
        while not stopped.wait(0.5):
            if not node.running:
                print(f"chain: the node exited; log tail:\n{node.log_tail()}", file=sys.stderr)
                raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("chain")(chain)
    app.command("deliver")(deliver)


__all__ = ["chain", "deliver", "register"]
