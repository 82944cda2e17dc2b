"""Payment-flow fixtures: the simulator as a real process, real Redis and PostgreSQL.

The simulator runs once per session with a fast retry schedule; each test
resets its faults and gets its own engine namespace, its own callback server
(a fresh port, so late callbacks of an earlier test never reach it) and a
PaymentService with short active-query delays. The simulator's counters are
session-wide (and per xdist worker, shared by every file that worker runs), so a
test reads them through `Flow.stats()`: only what happened since its own start,
after the earlier tests' deliveries (to their closed ports) have run out. Payment tables live in a
database of their own, created for the session and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, Sale, SaleCreate, SerialsSpec
from flashsale.payments.passwords import PasswordPolicy
from flashsale.payments.paysim.control import PaysimControl
from flashsale.payments.paysim.faults import Faults
from flashsale.payments.paysim.wire import Stats
from flashsale.payments.provider import SimProvider
from flashsale.payments.refunds import Refunds
from flashsale.payments.service import PaymentService, PaymentSettings
from flashsale.payments.timers import Timers
from flashsale.store import migrate
from tests.paysim.paysim_harness import PaysimProcess

from .callback_server import CallbackServer

SECRET = "payments-flow-secret"
PAYSIM_CONFIG: dict[str, Any] = {
    "secret": SECRET,
    "seed": 424242,
    "retry_schedule_s": [0.0, 0.5, 1.0, 2.0],
    "duplicate_after_s": 0.2,
    "callback_timeout_s": 5.0,
}

FAST = PaymentSettings(
    callback_window_s=0.6,
    query_backoff_s=0.4,
    query_backoff_max_s=1.5,
    lease_s=5.0,
    repair_after_s=0.3,
    expiry_grace_s=3.0,
    expiry_retry_s=0.3,
    start_margin_s=0.2,
    concurrency=48,
)
FAST_PASSWORDS = PasswordPolicy(
    max_attempts=5, lock_s=1.0, time_cost=1, memory_cost_kib=1024, parallelism=1
)


@pytest.fixture(scope="session")
def paysim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaysimProcess]:
    with PaysimProcess(
        PAYSIM_CONFIG, tmp_path_factory.mktemp("paysim-flow") / "paysim.log"
    ) as proc:
        yield proc


@contextlib.contextmanager
def own_database(pg_admin_url: str) -> Iterator[str]:
    """A database of its own, every migration applied (the whole chain, as a deployment has
    it: the API reads deliveries on an order); dropped afterwards."""
    name = f"flashsale_pay_{secrets.token_hex(4)}"
    base, _, _ = pg_admin_url.rpartition("/")

    async def setup() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        await migrate.upgrade(f"{base}/{name}")

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(setup())
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session")
def payments_db(pg_admin_url: str) -> Iterator[str]:
    """The payment tests' own database."""
    with own_database(pg_admin_url) as url:
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control(paysim: PaysimProcess) -> AsyncIterator[PaysimControl]:
    client = PaysimControl(paysim.url, timeout_s=15.0)
    yield client
    await client.aclose()


@dataclass
class Flow:
    """Everything one test needs, wired like the server wires it."""

    engine: Engine
    pool: asyncpg.Pool
    service: PaymentService
    refunds: Refunds
    control: PaysimControl
    provider: SimProvider
    server: CallbackServer
    prefix: str
    baseline: Stats = field(default_factory=Stats)
    _timers: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def since_start(self, now: Stats) -> Stats:
        """The simulator's counters for this test alone (the in-flight gauge as it is)."""
        counts = {
            f: getattr(now, f) - getattr(self.baseline, f)
            for f in Stats.__struct_fields__
            if f != "deliveries_in_flight"
        }
        return Stats(**counts, deliveries_in_flight=now.deliveries_in_flight)

    async def stats(self) -> Stats:
        return self.since_start(await self.control.stats())

    async def wait_idle(self, timeout_s: float = 30.0) -> Stats:
        return self.since_start(await self.control.wait_idle(timeout_s=timeout_s))

    async def sale(self, size: int = 10, **overrides: Any) -> Sale:
        fields: dict[str, Any] = {
            "sale_id": f"{self.prefix}-{secrets.token_hex(3)}",
            "name": "payments flow",
            "serials": SerialsSpec(range=(1, size)),
            "start_at": datetime.now(UTC) - timedelta(minutes=1),
            "price_cents": 9900,
            "payment_timeout_s": 120,
        }
        fields.update(overrides)
        return await self.engine.create_sale(SaleCreate(**fields))

    async def buy(self, sale_id: str, user_id: str) -> Order:
        return (await self.engine.purchase(sale_id, user_id)).order

    def start_timers(self, processes: int = 1, interval_s: float = 0.1) -> list[Timers]:
        """Run the timers as several independent workers, like several processes would."""
        timers = [Timers(self.service, interval_s=interval_s) for _ in range(processes)]
        for t in timers:
            self._timers.append(asyncio.create_task(t.run(self._stop)))
        return timers

    async def stop_timers(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers.clear()
        self._stop = asyncio.Event()


@pytest_asyncio.fixture(loop_scope="session")
async def flow(
    engine: Engine, payments_db: str, control: PaysimControl, paysim: PaysimProcess
) -> AsyncIterator[Flow]:
    await control.set_faults(Faults())
    # Earlier tests' retries would land in this test's counters: let them run out.
    baseline = await control.wait_idle(timeout_s=30)
    pool = await asyncpg.create_pool(payments_db, min_size=2, max_size=24)
    provider = SimProvider(paysim.url, SECRET, timeout_s=15.0)
    server = CallbackServer()
    await server.start()
    settings = PaymentSettings(
        **{**{f: getattr(FAST, f) for f in FAST.__slots__}, "public_url": server.url}
    )
    service = PaymentService(
        pool, engine, {"sim": provider}, settings, password_policy=FAST_PASSWORDS
    )
    server.service = service
    flow = Flow(
        engine=engine,
        pool=pool,
        service=service,
        refunds=Refunds(service),
        control=control,
        provider=provider,
        server=server,
        prefix=engine.namespace,
        baseline=baseline,
    )
    try:
        yield flow
    finally:
        await flow.stop_timers()
        await server.stop()
        with contextlib.suppress(Exception):
            await control.set_faults(Faults())
        await provider.aclose()
        await pool.close()
