"""Running the deliverer: open what it talks to from the ``Settings``, run until stopped.

``run_deliver`` is ``flashsale deliver`` (``serve --with-workers`` runs that as a
child process); the tests and the bench build a `Deliverer` directly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from flashsale.chain.deliverer import ChainReset, Deliverer, DeliveryConfig
from flashsale.chain.moves import EngineMoves
from flashsale.chain.rpc import ChainClient, ChainUnreachable
from flashsale.chain.signer import GWEI, FeePolicy, Signer, load_key
from flashsale.connect import open_engine, open_pool
from flashsale.engine.positions import list_positions
from flashsale.settings import ChainSettings, Settings
from flashsale.telemetry.workers import DELIVER

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
            with DELIVER.watching(deliverer.stats):
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


__all__ = ["NEEDS", "chain_id_when_up", "delivery_config", "run_deliver"]
