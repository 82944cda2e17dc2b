"""Deadlines on PostgreSQL and on the payment provider, against real stalled servers.

- A PostgreSQL frozen with SIGSTOP (postmaster and backends: it accepts TCP and
  never answers): reads that need it answer 503 ``database_unavailable`` within
  FLASHSALE_DATABASE_*_TIMEOUT_S, purchases (Redis) go on, and it recovers by itself.
- A provider that drips its answer one byte at a time (each read is quick, the call
  never ends): the call fails within FLASHSALE_PAYMENTS_PROVIDER_TIMEOUT_S.

"Within" is held by the test's own bound, never by timing an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.devservers import EmbeddedPostgres
from flashsale.devservers.pids import children
from flashsale.engine.engine import Engine
from flashsale.payments.provider import ProviderUnavailable, SimProvider
from flashsale.settings import DatabaseSettings
from flashsale.store import migrate

from .conftest import app_settings, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]
BOUND_S = 10  # far above the deadlines below: only a missing deadline reaches it


@pytest.fixture(scope="module")
def postgres() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        asyncio.run(migrate.upgrade(server.url))
        yield server


def _signal_all(server: EmbeddedPostgres, sig: signal.Signals) -> None:
    assert server.pid is not None
    for pid in [server.pid, *children(server.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def test_a_frozen_postgres_is_503_within_the_deadline_and_recovers(
    postgres: EmbeddedPostgres, redis_url: str, namespace: str, engine: Engine
) -> None:
    settings = app_settings(redis_url, namespace)
    settings = type(settings)(
        jwt_secret=settings.jwt_secret,
        redis=settings.redis,
        api=settings.api,
        database=DatabaseSettings(url=postgres.url, acquire_timeout_s=0.5, query_timeout_s=0.5),
    )
    wallet = "/v1/me/wallet?currency=CNY"
    async with AsyncTestClient(app=create_app(settings)) as client:
        body = {"sale_id": "dl", "name": "dl", "serials": {"range": [1, 10]}}
        r = await client.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
        assert r.status_code == 201, r.text
        assert (await client.get(wallet, headers=bearer("w1"))).status_code == 200
        _signal_all(postgres, signal.SIGSTOP)
        try:
            async with asyncio.timeout(BOUND_S):
                # the pooled connection's statement, then new connections' handshakes
                answers = await asyncio.gather(
                    *(client.get(wallet, headers=bearer(f"w{i}")) for i in range(4))
                )
                for answer in answers:
                    assert problem(answer, 503, "database_unavailable")
                # Redis is the authority: selling does not wait for PostgreSQL
                r = await client.post("/v1/sales/dl/purchase", json={}, headers=bearer("b1"))
                assert r.status_code == 201, r.text
        finally:
            _signal_all(postgres, signal.SIGCONT)
        give_up = time.monotonic() + BOUND_S
        while (status := (await client.get(wallet, headers=bearer("w1"))).status_code) != 200:
            assert status == 503 and time.monotonic() < give_up
            await asyncio.sleep(0.1)


async def test_a_provider_dripping_its_answer_fails_within_the_deadline() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(400):  # bounded: 20 s of one byte per 50 ms
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = SimProvider(f"http://127.0.0.1:{port}", "s" * 32, timeout_s=0.5)
    try:
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(ProviderUnavailable, match="timed out"):
                await provider.query("tr_1")
    finally:
        await provider.aclose()
        server.close()
