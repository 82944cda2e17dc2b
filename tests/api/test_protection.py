"""Protection under load: per-IP request rate (shared in Redis), sold-out short-circuit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.api.state import SoldOutCache
from flashsale.engine.engine import Engine
from flashsale.settings import SOLD_OUT_CACHE_MAX_S

from .conftest import app_settings, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]


async def test_ip_rate_limit_is_shared_by_workers(
    redis_url: str, namespace: str, engine: Engine
) -> None:
    """Two app instances (as two workers would be) share one per-IP budget per second."""
    settings = app_settings(redis_url, namespace, ip_rate_per_s=4)
    async with (
        AsyncTestClient(app=create_app(settings)) as one,
        AsyncTestClient(app=create_app(settings)) as two,
    ):
        # align to the start of a second so the burst stays inside one window
        await asyncio.sleep(1 - (time.time() % 1) + 0.02)
        started = time.time()
        answers = []
        for i in range(8):
            client = one if i % 2 else two
            answers.append(await client.get("/v1/sales/none"))
        assert time.time() - started < 0.9, "the burst must fit in one window"
        codes = [r.status_code for r in answers]
        assert codes.count(404) == 4, codes  # allowed: answered normally
        assert codes.count(429) == 4, codes
        limited = next(r for r in answers if r.status_code == 429)
        problem(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "1"
        # health and metrics are never limited
        assert (await one.get("/health")).status_code == 200
        # the next window allows again
        await asyncio.sleep(1.05)
        assert (await one.get("/v1/sales/none")).status_code == 404


async def test_rate_limit_is_off_by_default(client: Client) -> None:
    codes = {(await client.get("/v1/sales/none")).status_code for _ in range(30)}
    assert codes == {404}


def test_sold_out_cache_unit() -> None:
    cache = SoldOutCache(5.0)  # asked for more than the contract allows
    assert cache.ttl_s == SOLD_OUT_CACHE_MAX_S
    cache.remember("s", asked_at=100.0)
    assert cache.hit("s", 100.0) and cache.hit("s", 100.999)
    assert not cache.hit("s", 101.0)  # never longer than 1 s after the request was sent
    assert not cache.hit("s", 100.5)  # and the entry is gone once expired
    cache.remember("s", asked_at=200.0)
    cache.forget("s")
    assert not cache.hit("s", 200.1)


async def test_sold_out_short_circuit_bound(client: Client, make_sale: Any, engine: Engine) -> None:
    """Once sold out, a worker answers from memory, but a released serial sells within 1 s."""
    await make_sale(sale_id="so", serials={"range": [1, 1]})
    first = (await client.post("/v1/sales/so/purchase", json={}, headers=bearer("a"))).json()
    problem(
        await client.post("/v1/sales/so/purchase", json={}, headers=bearer("b")), 409, "sold_out"
    )
    await engine.cancel(first["order_id"])  # the serial is back: Redis would sell it now
    released = time.monotonic()
    assert (await engine.get_sale("so")).available == 1
    # answered from memory (Redis would say yes) ...
    problem(
        await client.post("/v1/sales/so/purchase", json={}, headers=bearer("c")), 409, "sold_out"
    )
    # ... but a request with an Idempotency-Key is not: a replay must reach Redis
    keyed = await client.post(
        "/v1/sales/so/purchase", json={}, headers={**bearer("d"), "Idempotency-Key": "k"}
    )
    assert keyed.status_code == 201, keyed.text
    await engine.cancel(keyed.json()["order_id"])
    released = time.monotonic()
    sold_out_answers = 0
    while True:
        r = await client.post("/v1/sales/so/purchase", json={}, headers=bearer("e"))
        if r.status_code == 201:
            break
        problem(r, 409, "sold_out")
        sold_out_answers += 1
        assert time.monotonic() - released < SOLD_OUT_CACHE_MAX_S + 0.2, (
            "cached sold_out outlived 1 s"
        )
        await asyncio.sleep(0.02)
    assert sold_out_answers >= 1  # the cache was in use when the serial came back
    assert r.json()["serial"] == 1
