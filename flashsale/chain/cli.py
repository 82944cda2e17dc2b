"""CLI of delivery on chain: ``flashsale chain`` (a local node) and ``flashsale deliver``.

Mount with ``register(app)``. ``deliver`` needs FLASHSALE_DATABASE_URL,
FLASHSALE_REDIS_URL and FLASHSALE_CHAIN_URL (and, outside dev mode,
FLASHSALE_CHAIN_KEY); FLASHSALE_CHAIN_* tune it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from typing import Annotated, Any

import typer

from flashsale.chain.deliverer import ChainReset, Deliverer, DeliveryConfig
from flashsale.chain.moves import EngineMoves
from flashsale.chain.rpc import ChainClient, ChainUnreachable
from flashsale.chain.signer import GWEI, FeePolicy, Signer, load_key
from flashsale.connect import open_engine, open_pool
from flashsale.engine.positions import list_positions
from flashsale.settings import ChainSettings, Settings, config_errors, load_or_exit

log = logging.getLogger("flashsale.chain")

NEEDS = ("FLASHSALE_DATABASE_URL", "FLASHSALE_REDIS_URL", "FLASHSALE_CHAIN_URL")


def delivery_config(chain: ChainSettings) -> DeliveryConfig:
    return DeliveryConfig(
        confirmations=chain.confirmations,
        max_in_flight=chain.max_in_flight,
        poll_s=chain.poll_s,
        bump_after_s=chain.bump_after_s,
        recheck_after_s=max(2.0, 2 * chain.poll_s),
        fees=FeePolicy(cap=int(chain.max_fee_gwei * GWEI)),
    )


async def chain_id_when_up(client: ChainClient, stop: asyncio.Event) -> int | None:
    """The node's chain id, waiting (with back-off) while it does not answer."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await client.chain_id()
        except ChainUnreachable as exc:
            log.warning("waiting for the chain: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, 10.0)
    return None


async def run_deliver(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """``flashsale deliver`` until SIGTERM/SIGINT (or ``stop``); the exit code."""
    settings.require(*NEEDS)
    assert settings.chain.url is not None and settings.chain.key is not None
    account = load_key(settings.chain.key)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    own_signals = threading.current_thread() is threading.main_thread()
    if own_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    client = ChainClient(settings.chain.url)
    engine = await open_engine(settings)
    pool = await open_pool(settings, max_size=4)
    try:
        chain_id = await chain_id_when_up(client, stop)
        if chain_id is None:
            return 0
        signer = Signer(account, chain_id)
        log.info("deliver: chain %d at %s, minter %s", chain_id, client.url, signer.address)

        async def positions(sale_id: str) -> dict[str, int]:
            return await list_positions(engine, sale_id)

        deliverer = Deliverer(
            pool, client, signer, EngineMoves(engine), positions,
            delivery_config(settings.chain),
        )  # fmt: skip
        try:
            await deliverer.run(stop)
        except ChainReset as exc:
            log.error("deliver: %s", exc)
            return 2
        return 0
    finally:
        if own_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        await pool.close()
        await engine.aclose()
        await client.close()


def deliver() -> None:
    """Mint each paid order's token to its buyer's address (FLASHSALE_CHAIN_*)."""
    settings = load_or_exit(*NEEDS, secrets=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with config_errors():
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


__all__ = ["chain_id_when_up", "delivery_config", "register", "run_deliver"]
