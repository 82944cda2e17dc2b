"""Against real server processes: end to end (granian and uvicorn, 2 workers); the OpenAPI
document against a live server is tests/api/test_openapi_exact.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from flashsale.api.tokens import mint_token
from flashsale.devservers import ChildProcess, free_port

from ..conftest import delete_namespace
from .conftest import SECRET

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace


def running(
    kind: str | None,
    redis_url: str,
    logs: pytest.TempPathFactory,
    database_url: str | None = None,
    variables: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``flashsale serve --server <kind>`` (no ``--server`` for None: the settings choose)
    with 2 workers on a free port, until healthy; ``variables`` added to its environment."""
    kind_tag = (kind or "settings")[:1]
    namespace = f"srv{os.getpid()}{kind_tag}{int(time.time() * 1000) % 100000}"
    port = free_port()
    env = {
        **os.environ,
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_NAMESPACE": namespace,
        "FLASHSALE_JWT_SECRET": SECRET,
    }
    for name in ("FLASHSALE_DATABASE_URL", "FLASHSALE_IP_RATE_PER_S", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    if database_url:
        env["FLASHSALE_DATABASE_URL"] = database_url
    env |= variables or {}
    cmd = [sys.executable, "-m", "flashsale.cli.main", "serve"]
    cmd += ["--server", kind] if kind else []
    cmd += ["--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    process = ChildProcess(
        cmd,
        env=env,
        log=logs.mktemp(f"server-{kind or 'settings'}") / "server.log",
        ready_url=f"{url}/health",
        start_timeout_s=30,
        stop_signal=signal.SIGINT,
        grace_s=15,
    )
    try:
        with process:
            yield Server(url, namespace)
    finally:
        asyncio.run(delete_namespace(redis_url, namespace))


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from running(request.param, redis_url, tmp_path_factory)


@pytest.mark.parametrize(
    ("variables", "header"),
    [
        ({"FLASHSALE_SERVER": "uvicorn"}, "uvicorn"),
        (
            {
                "FLASHSALE_SERVER": "granian",
                "FLASHSALE_GRANIAN_RUNTIME_MODE": "st",
                "FLASHSALE_GRANIAN_RUNTIME_THREADS": "2",
                "FLASHSALE_GRANIAN_BACKPRESSURE": "64",
            },
            "granian",
        ),
    ],
)
def test_server_and_its_knobs_come_from_the_settings(
    variables: dict[str, str],
    header: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Without ``--server``, FLASHSALE_SERVER picks the server (each names itself in its
    ``server`` header); granian starts and serves with its FLASHSALE_GRANIAN_* knobs set."""
    with contextlib.contextmanager(running)(
        None, redis_url, tmp_path_factory, variables=variables
    ) as server:
        answers = [httpx.get(f"{server.url}/health", timeout=10) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        assert {a.headers.get("server") for a in answers} == {header}


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_end_to_end_create_purchase_get(server: Server) -> None:
    admin = {"Authorization": f"Bearer {mint_token(SECRET, 'ops', admin=True)}"}
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=limits) as client:
        r = await client.post(
            "/v1/sales",
            json={"sale_id": "e2e", "name": "E2E", "serials": {"range": [1, 50]}},
            headers=admin,
        )
        assert r.status_code == 201, r.text

        async def buy(i: int) -> httpx.Response:
            headers = {"Authorization": f"Bearer {mint_token(SECRET, f'buyer-{i}')}"}
            return await client.post("/v1/sales/e2e/purchase", json={}, headers=headers)

        answers = await asyncio.gather(*(buy(i) for i in range(200)))
        won = [a for a in answers if a.status_code == 201]
        lost = [a for a in answers if a.status_code != 201]
        assert len(won) == 50
        assert {a.json()["serial"] for a in won} == set(range(1, 51))  # each serial once
        assert {a.json()["code"] for a in lost} == {"sold_out"}
        order = won[0].json()
        owner = order["order_id"]
        buyer_of = next(i for i, a in enumerate(answers) if a is won[0])
        mine = await client.get(
            f"/v1/orders/{owner}",
            headers={"Authorization": f"Bearer {mint_token(SECRET, f'buyer-{buyer_of}')}"},
        )
        assert mine.status_code == 200 and mine.json()["order_id"] == owner
        sale = (await client.get("/v1/sales/e2e")).json()
        assert (sale["available"], sale["reserved"], sale["status"]) == (0, 50, "sold_out")
        # every worker's counters, whichever worker answers the scrape: the other worker's
        # reach it within its flush interval (api/metrics.py), so the scrape is repeated
        created = 'flashsale_purchases_total{outcome="created"}'
        sold_out = 'flashsale_purchases_total{outcome="sold_out"}'
        deadline = time.monotonic() + 15
        while True:
            text = (await client.get("/metrics")).text
            seen = (_metric(text, created), _metric(text, sold_out))
            if seen == (50, 150) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # the other worker flushes on a timer of its own
        assert seen == (50, 150)
