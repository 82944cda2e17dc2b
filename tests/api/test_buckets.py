"""A bucketed drop through the API, end to end: create with ``"buckets": 3``, buy past the
home bucket's stock, pay, expire, persist, audit; on one Redis and on a 3-master cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.connect import open_engine
from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import home_bucket, slot_of_order
from flashsale.settings import DatabaseSettings, RedisSettings, Settings
from flashsale.store.persist import Persister

from ..conftest import delete_namespace, pool_on
from .conftest import SECRET, bearer
from .test_wired import ADMIN, Client, _paid_order


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster(nodes=3) as running:
        yield running


def _settings(url: str, namespace: str, database_url: str, *, cluster: bool) -> Settings:
    redis = RedisSettings(url=url, namespace=namespace, cluster=cluster, timeout_ms=30_000)
    return Settings(jwt_secret=SECRET, redis=redis, database=DatabaseSettings(url=database_url))


@pytest_asyncio.fixture(loop_scope="session", params=["one-redis", "cluster"])
async def wired(
    request: pytest.FixtureRequest, redis_url: str, namespace: str, migrated_database_url: str
) -> AsyncIterator[tuple[Client, Engine, Settings]]:
    on_cluster = request.param == "cluster"
    url = request.getfixturevalue("cluster").url if on_cluster else redis_url
    settings = _settings(url, namespace, migrated_database_url, cluster=on_cluster)
    engine = await open_engine(settings)
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            yield client, engine, settings
    finally:
        await engine.aclose()
        if not on_cluster:  # the shared Redis: this test's keys go (the cluster is its own)
            await delete_namespace(redis_url, namespace)


def _homed(bucket: int, n: int, prefix: str) -> list[str]:
    users = (f"{prefix}{i}" for i in range(10_000))
    return [u for u in users if home_bucket(u, 3) == bucket][:n]


async def _create_drop(client: Client, sale_id: str, size: int, **fields: Any) -> None:
    """A drop of serials 1..size over 3 buckets, created through the admin API."""
    body = {"sale_id": sale_id, "name": sale_id, "serials": {"range": [1, size]}, "buckets": 3}
    r = await client.post("/v1/sales", json=body | fields, headers=ADMIN)
    assert r.status_code == 201 and r.json()["buckets"] == 3, r.text


async def _buy(client: Client, sale_id: str, user: str) -> dict[str, Any]:
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(user))
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def test_a_bucketed_drop_end_to_end(
    wired: tuple[Client, Engine, Settings], namespace: str
) -> None:
    client, engine, settings = wired
    sale_id = f"b-{namespace}"
    await _create_drop(client, sale_id, 9, price_cents=990, payment_timeout_s=4)
    # buyers of bucket 1 (3 serials) buy 5: two borrowed from the other buckets (one paid
    # from the wallet within the 4 s payment timeout)
    buyers = _homed(1, 6, f"{namespace}-h")
    bought = [await _buy(client, sale_id, user) for user in buyers[:4]]
    paid = await _paid_order(client, sale_id, buyers[4])
    bought.append(paid)
    assert {o["sale_id"] for o in bought} == {sale_id}
    assert {slot_of_order(o["order_id"]) for o in bought} == {f"{sale_id}.1"}
    assert len({o["serial"] for o in bought}) == 5
    # the other buckets' buyers take the other 4, then the drop is sold out
    others = _homed(0, 2, f"{namespace}-z") + _homed(2, 3, f"{namespace}-z")
    bought += [await _buy(client, sale_id, user) for user in others[:4]]
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(others[4]))
    assert r.status_code == 409 and r.json()["code"] == "sold_out", r.text
    sale = (await client.get(f"/v1/sales/{sale_id}")).json()
    assert (sale["total"], sale["sold"], sale["reserved"], sale["available"]) == (9, 1, 8, 0)
    assert sale["status"] == "sold_out"
    # an unpaid borrowed order expires: its serial goes back to its buyer's home bucket
    expiring = bought[3]
    for _ in range(200):  # its deadline is at most 4 s away
        try:
            await engine.expire(expiring["order_id"])
            break
        except errors.NotDue:
            await asyncio.sleep(0.05)
    again = await _buy(client, sale_id, others[4])
    assert again["serial"] == expiring["serial"]
    # the write-behind drains every bucket's stream into the one sale; the audit is clean
    assert settings.database.url is not None
    async with pool_on(settings.database.url) as pool:
        persister = Persister(engine.redis, pool, namespace=namespace)
        await persister.drain(timeout_s=60)
    r = await client.get(f"/v1/sales/{sale_id}/audit", headers=ADMIN)
    report = r.json()
    assert r.status_code == 200 and report["ok"], report
    assert report["persisted"] == 10 and report["lag"] == 0, report
    got = await client.get(f"/v1/orders/{paid['order_id']}", headers=bearer(buyers[4]))
    assert got.status_code == 200 and got.json()["status"] == "paid", got.text


async def test_the_ip_limit_is_one_limit_over_the_buckets(
    wired: tuple[Client, Engine, Settings], namespace: str
) -> None:
    """One address (the test client's) buys for buyers homed in every bucket: the per-IP
    limit counts it once over the drop, a cancel frees it, and the audit (exact per-IP
    bound) is clean. (Before: up to B x the limit.)"""
    client, engine, settings = wired
    sale_id = f"ip-{namespace}"
    await _create_drop(client, sale_id, 30, per_user_limit=3, per_ip_limit=2)
    buyers = [user for b in range(3) for user in _homed(b, 2, f"{namespace}-i{b}")]
    bought = [await _buy(client, sale_id, user) for user in buyers[:2]]
    for user in buyers[2:]:
        r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(user))
        assert r.status_code == 409 and r.json()["code"] == "limit_reached", r.text
        assert r.json()["scope"] == "ip" and r.json()["limit"] == 2, r.text
    cancel = f"/v1/orders/{bought[0]['order_id']}/cancel"
    r = await client.post(cancel, headers=bearer(buyers[0]))
    assert r.status_code == 200, r.text
    bought.append(await _buy(client, sale_id, buyers[-1]))
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(buyers[-2]))
    assert r.status_code == 409 and r.json()["scope"] == "ip", r.text
    assert settings.database.url is not None
    async with pool_on(settings.database.url) as pool:
        await Persister(engine.redis, pool, namespace=namespace).drain(timeout_s=60)
    r = await client.get(f"/v1/sales/{sale_id}/audit", headers=ADMIN)
    assert r.status_code == 200 and r.json()["ok"], r.json()
