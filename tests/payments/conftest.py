from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from flashsale.payments.paysim.control import PaysimControl
from flashsale.payments.provider import SimProvider
from paysim_harness import PAYSIM_CONFIG, SECRET, PaysimProcess, Receiver


@pytest.fixture(scope="session")
def paysim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaysimProcess]:
    proc = PaysimProcess(PAYSIM_CONFIG, tmp_path_factory.mktemp("paysim") / "paysim.log")
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def provider(paysim: PaysimProcess) -> AsyncIterator[SimProvider]:
    client = SimProvider(paysim.url, SECRET, timeout_s=2.0)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control(paysim: PaysimProcess) -> AsyncIterator[PaysimControl]:
    client = PaysimControl(paysim.url)
    yield client
    await client.aclose()
