"""Delivery-on-chain fixtures: a real hardhat node, real PostgreSQL and Redis.

One node serves the session (it takes seconds to start); every test runs
between an ``evm_snapshot`` and an ``evm_revert`` of it, with a database of its
own (migrated) and an engine namespace of its own, so tests share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from flashsale.chain.deliverer import Deliverer, DeliveryConfig
from flashsale.chain.moves import EngineMoves
from flashsale.chain.rpc import ChainClient
from flashsale.chain.signer import FeePolicy, Signer, load_key
from flashsale.devservers.chain import EmbeddedChain
from flashsale.engine.engine import Engine
from flashsale.engine.positions import list_positions
from flashsale.store import migrate

BLOCK_MS = 100
FAST = DeliveryConfig(
    confirmations=2, max_in_flight=256, poll_s=0.05, bump_after_s=1.0, recheck_after_s=0.4
)


@pytest.fixture(scope="session")
def chain_node() -> Iterator[EmbeddedChain]:
    with EmbeddedChain(block_ms=BLOCK_MS) as node:
        yield node


@pytest.fixture
def chain(chain_node: EmbeddedChain) -> Iterator[EmbeddedChain]:
    """The session's node, put back as it was after the test (automine on, state reverted)."""
    if not chain_node.running:  # a test stopped it
        chain_node.start()
    snapshot = chain_node.rpc("evm_snapshot")
    yield chain_node
    chain_node.resume()
    chain_node.rpc("evm_setAutomine", [True])
    chain_node.rpc("evm_setIntervalMining", [BLOCK_MS])
    chain_node.rpc("evm_revert", [snapshot])


@pytest.fixture
async def chain_db(pg_admin_url: str) -> AsyncIterator[str]:
    """A database of the test's own with every migration applied."""
    name = f"fs_chain_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = pg_admin_url.rpartition("/")
    await migrate.upgrade(f"{base}/{name}")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def chain_pool(chain_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(chain_db, min_size=1, max_size=6)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@dataclass
class Running:
    """A deliverer running as a task until the test ends."""

    deliverer: Deliverer
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.deliverer.run(self.stop))

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
            self.task = None


@pytest_asyncio.fixture
async def make_deliverer(
    chain: EmbeddedChain, chain_pool: asyncpg.Pool, engine: Engine
) -> AsyncIterator[Any]:
    made: list[Running] = []
    clients: list[ChainClient] = []

    def make(*, fees: FeePolicy | None = None, **overrides: Any) -> Running:
        client = ChainClient(chain.url, timeout_s=2.0)
        clients.append(client)
        config = dataclasses.replace(FAST, **overrides)
        if fees is not None:
            config = dataclasses.replace(config, fees=fees)

        async def positions(sale_id: str) -> dict[str, int]:
            return await list_positions(engine, sale_id)

        signer = Signer(load_key(chain.dev_key), chain.chain_id)
        deliverer = Deliverer(chain_pool, client, signer, EngineMoves(engine), positions, config)
        running = Running(deliverer)
        made.append(running)
        return running

    yield make
    for running in made:
        with contextlib.suppress(Exception):
            await running.halt()
    for client in clients:
        await client.close()
