"""/health and /metrics: a cost independent of the sales ever created, no unannounced
drop named in public, and behind FLASHSALE_METRICS_TOKEN when it is set.

A private redis-server, so its command counters (INFO commandstats) count this
test's commands only: the work of a scrape is counted, never timed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.devservers import EmbeddedRedis
from flashsale.engine.keys import active_sales, sales_registry
from flashsale.settings import ApiSettings, ConfigError, RedisSettings, Settings

from .conftest import SECRET, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]
NS = "mb"
TOKEN = "metrics-token-0123456789-0123456789"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as running:
        yield running


def _settings(server: EmbeddedRedis, **api: Any) -> Settings:
    return Settings(
        jwt_secret=SECRET,
        redis=RedisSettings(url=server.url, namespace=NS),
        api=ApiSettings(**api),
    )


def _calls(server: EmbeddedRedis) -> int:
    stats = server.client().info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def _sales(client: Client) -> None:
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    for sale_id, start in (("live", None), ("secret-drop", later)):
        body: dict[str, Any] = {"sale_id": sale_id, "name": sale_id, "serials": {"range": [1, 5]}}
        if start:
            body["start_at"] = start
        r = await client.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
        assert r.status_code == 201, r.text
    assert (
        await client.post("/v1/sales/live/purchase", json={}, headers=bearer("b"))
    ).status_code == 201


async def _scrape_cost(server: EmbeddedRedis, client: Client, headers: dict[str, str]) -> int:
    """Redis commands of one /health plus one /metrics (the least of three: the worker's
    once-a-second counter flush may land in one of them)."""
    costs = []
    for _ in range(3):
        before = _calls(server)
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics", headers=headers)).status_code == 200
        costs.append(_calls(server) - before)
    return min(costs)


async def test_scrapes_cost_the_same_with_10000_sales_ever_created(server: EmbeddedRedis) -> None:
    redis = server.client()
    redis.flushall()
    async with AsyncTestClient(app=create_app(_settings(server))) as client:
        await _sales(client)
        redis.sadd(active_sales(NS), "live", "secret-drop")  # the engine's active set (#12)
        few = await _scrape_cost(server, client, {})
        redis.sadd(sales_registry(NS), *(f"old-{i}" for i in range(10_000)))
        many = await _scrape_cost(server, client, {})
        assert many == few, (few, many)
        # without an active set: one bounded scan of the registry, whatever its size
        redis.delete(active_sales(NS))
        fallback = await _scrape_cost(server, client, {})
        redis.sadd(sales_registry(NS), *(f"older-{i}" for i in range(10_000)))
        assert await _scrape_cost(server, client, {}) <= fallback + 10


async def test_public_metrics_name_no_unannounced_drop(server: EmbeddedRedis) -> None:
    server.client().flushall()
    async with AsyncTestClient(app=create_app(_settings(server))) as client:
        await _sales(client)
        server.client().sadd(active_sales(NS), "live", "secret-drop")
        text = (await client.get("/metrics")).text
        assert 'flashsale_stream_lag{sale_id="live"}' in text
        assert "secret-drop" not in text
        # both counted in the total (1 purchase + 2 creations, nothing persisted here)
        assert "flashsale_write_behind_lag 3.0" in text


async def test_metrics_behind_a_token_name_every_sale(server: EmbeddedRedis) -> None:
    server.client().flushall()
    async with AsyncTestClient(app=create_app(_settings(server, metrics_token=TOKEN))) as client:
        await _sales(client)
        server.client().sadd(active_sales(NS), "live", "secret-drop")
        problem(await client.get("/metrics"), 401, "unauthenticated")
        wrong = {"Authorization": "Bearer not-the-token"}
        problem(await client.get("/metrics", headers=wrong), 401, "unauthenticated")
        problem(
            await client.get("/metrics", headers=bearer("ops", admin=True)), 401, "unauthenticated"
        )
        r = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and 'flashsale_stream_lag{sale_id="secret-drop"}' in r.text
        assert (await client.get("/health")).status_code == 200  # health stays public


def test_a_short_metrics_token_is_refused_outside_dev_mode() -> None:
    base = {"FLASHSALE_ENV": "prod", "FLASHSALE_JWT_SECRET": "j" * 40}
    Settings.from_env(base).require_secrets()  # unset: public metrics, nothing to check
    with pytest.raises(ConfigError, match="FLASHSALE_METRICS_TOKEN is shorter than 32 bytes"):
        Settings.from_env({**base, "FLASHSALE_METRICS_TOKEN": "short"}).require_secrets()
    strong = {**base, "FLASHSALE_METRICS_TOKEN": TOKEN}
    assert Settings.from_env(strong).require_secrets().api.metrics_token == TOKEN
