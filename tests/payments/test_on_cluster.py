"""The payment flow and the timers on a Redis Cluster with replicas: the same tests as on
one Redis (imported below), with the engine opened the way every process opens it when
``FLASHSALE_REDIS_CLUSTER=1``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from flashsale.bench.failover import node_args
from flashsale.connect import open_engine
from flashsale.devservers import EmbeddedRedisCluster
from flashsale.engine.engine import Engine
from flashsale.settings import RedisSettings, Settings

from .conftest import own_database
from .test_basic import (
    test_balance_payment_needs_the_password_and_pays_at_once,
    test_provider_payment_pays_the_order_through_its_callback,
)
from .test_buckets_timers import (
    test_a_tick_deletes_the_ip_holds_of_a_retired_sale,
    test_a_tick_deletes_the_orphans_of_a_creation_stopped_long_ago,
)
from .test_money import (
    test_cancel_of_a_paid_order_waits_for_review_then_refunds,
    test_timers_expire_unpaid_orders_and_close_their_trades,
    test_two_attempts_both_paid_keep_one_and_refund_the_other,
)

__all__ = [
    "test_a_tick_deletes_the_ip_holds_of_a_retired_sale",
    "test_a_tick_deletes_the_orphans_of_a_creation_stopped_long_ago",
    "test_balance_payment_needs_the_password_and_pays_at_once",
    "test_cancel_of_a_paid_order_waits_for_review_then_refunds",
    "test_provider_payment_pays_the_order_through_its_callback",
    "test_timers_expire_unpaid_orders_and_close_their_trades",
    "test_two_attempts_both_paid_keep_one_and_refund_the_other",
]


@pytest.fixture(scope="module")
def payments_db(pg_admin_url: str) -> Iterator[str]:
    """A database of this module's own: the imported tests reuse their buyers' names."""
    with own_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    # durable, as the settings default to: each master refuses writes its replica would miss
    with EmbeddedRedisCluster(nodes=3, replicas=1, extra_args=node_args("durable")) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def engine(cluster: EmbeddedRedisCluster, namespace: str) -> AsyncIterator[Engine]:
    """The engine the payment flow runs on (overrides the single-server one)."""
    settings = Settings(
        redis=RedisSettings(url=cluster.url, cluster=True, namespace=namespace, timeout_ms=30_000)
    )
    opened = await open_engine(settings)
    try:
        yield opened
    finally:
        with contextlib.suppress(Exception):
            await opened.aclose()
