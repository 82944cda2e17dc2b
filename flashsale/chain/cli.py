"""CLI of delivery on chain: ``flashsale chain`` (a local node) and ``flashsale deliver``.

Mount with ``register(app)``. ``deliver`` needs FLASHSALE_DATABASE_URL,
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


def deliver() -> None:
    """Mint each paid order's token to its buyer's address (FLASHSALE_CHAIN_*)."""
    from flashsale.chain.service import NEEDS, run_deliver
    from flashsale.telemetry.exporter import export
    from flashsale.telemetry.workers import DELIVER

    settings = load_or_exit(*NEEDS, secrets=True)
    logs.configure("deliver", settings.log_format)
    with config_errors():
        metrics = settings.metrics
        export(metrics.deliver_port, metrics.host, "FLASHSALE_DELIVER_METRICS_PORT", DELIVER)
        raise typer.Exit(asyncio.run(run_deliver(settings)))


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
