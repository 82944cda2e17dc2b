"""What a buyer is told when Redis freezes or loses its replica (docs/design.md, "Answers
that are the truth"), through the real app on private redis-servers.

- Frozen (SIGSTOP): 503 within FLASHSALE_REDIS_TIMEOUT_MS, with Retry-After;
  ``outcome_unknown`` for a purchase that was sent, and the same Idempotency-Key
  then answers with the one order; purchases succeed again by themselves.
- Durable mode, master + replica with ``min-replicas-to-write 1``: a replica
  that stops acknowledging (WAIT short after the script ran) still gets the buyer
  201 with the order; the replica killed, purchases answer 503
  ``engine_unavailable`` and nothing is sold; the replica back, purchases succeed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.devservers import EmbeddedRedis
from flashsale.settings import RedisSettings, Settings

from .conftest import SECRET, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]
TIMEOUT_MS = 300
GUARDED = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")


def _settings(url: str, **fields: Any) -> Settings:
    return Settings(
        jwt_secret=SECRET,
        redis=RedisSettings(url=url, namespace="tr", timeout_ms=TIMEOUT_MS),
        **fields,
    )


async def _sale(client: Client, sale_id: str, size: int = 10) -> None:
    body = {"sale_id": sale_id, "name": sale_id, "serials": {"range": [1, size]}}
    r = await client.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
    assert r.status_code == 201, r.text


async def _buy(client: Client, sale_id: str, user: str, key: str | None = None) -> httpx.Response:
    headers = bearer(user) | ({"Idempotency-Key": key} if key else {})
    return await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=headers)


async def _until_bought(client: Client, sale_id: str, user: str, key: str | None = None) -> Any:
    """Retry while the answer is 503 (bounded): the server recovers by itself."""
    give_up = time.monotonic() + 10
    while True:
        r = await _buy(client, sale_id, user, key)
        if r.status_code != 503 or time.monotonic() > give_up:
            assert r.status_code in (200, 201), r.text
            return r.json()
        await asyncio.sleep(0.05)


async def _available(client: Client, sale_id: str) -> int:
    available: int = (await client.get(f"/v1/sales/{sale_id}")).json()["available"]
    return available


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as running:
        yield running


async def test_a_frozen_redis_is_503_within_the_deadline_then_the_same_key_finds_the_order(
    server: EmbeddedRedis,
) -> None:
    async with AsyncTestClient(app=create_app(_settings(server.url))) as client:
        await _sale(client, "freeze")
        assert (await _buy(client, "freeze", "warm-up")).status_code == 201
        server.pause()
        try:
            started = time.monotonic()
            sent = await _buy(client, "freeze", "alice", key="alice-1")
            elapsed = time.monotonic() - started
            problem(sent, 503, "outcome_unknown")
            assert sent.headers["retry-after"] == "1"
            assert elapsed < TIMEOUT_MS / 1000 + 1.0, elapsed
            held = await _buy(client, "freeze", "bob")  # not sent to a node that is frozen
            problem(held, 503, "engine_unavailable")
        finally:
            server.resume()
        order = await _until_bought(client, "freeze", "alice", key="alice-1")
        again = await _buy(client, "freeze", "alice", key="alice-1")
        assert again.status_code == 200 and again.json()["order_id"] == order["order_id"]
        await _until_bought(client, "freeze", "carol")
        mine = await client.get("/v1/me/orders", headers=bearer("alice"))
        assert [o["order_id"] for o in mine.json()] == [order["order_id"]]


async def test_durable_mode_a_lost_replica_is_503_with_nothing_sold() -> None:
    with (
        EmbeddedRedis(appendonly=True, appendfsync="always", extra_args=GUARDED) as primary,
        EmbeddedRedis(replica_of=primary) as replica,
    ):
        replica.wait_in_sync()
        settings = _settings(primary.url, durability="durable")
        async with AsyncTestClient(app=create_app(settings)) as client:
            await _sale(client, "guarded")
            assert (await _buy(client, "guarded", "before")).status_code == 201
            replica.pause()  # within min-replicas-max-lag Redis still writes; WAIT comes back short
            try:
                late = await _buy(client, "guarded", "late-ack")
            finally:
                replica.resume()
            assert late.status_code == 201, late.text  # the order exists: never a 503 for it
            replica.stop()
            _until_no_replica(primary)
            before = await _available(client, "guarded")
            for user in ("u1", "u2", "u3"):
                problem(await _buy(client, "guarded", user, key=user), 503, "engine_unavailable")
            assert await _available(client, "guarded") == before  # nothing was sold
            replica.restart()
            replica.wait_in_sync()
            await _until_bought(client, "guarded", "u1", key="u1")
            assert await _available(client, "guarded") == before - 1


def _until_no_replica(primary: EmbeddedRedis) -> None:
    """The primary noticed its replica is gone (it then refuses writes, NOREPLICAS)."""
    client = primary.client()
    give_up = time.monotonic() + 10
    try:
        while int(client.info("replication")["connected_slaves"]) > 0:
            assert time.monotonic() < give_up, "the primary still counts its replica"
            time.sleep(0.02)
    finally:
        client.close()
