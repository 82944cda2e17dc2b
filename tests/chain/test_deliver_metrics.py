"""The deliverer's series move as it works: a mint submitted, confirmed, none in flight after,
read through the collector ``flashsale deliver`` serves on its metrics port."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flashsale.engine.engine import Engine
from flashsale.telemetry.workers import DELIVER
from tests.chain.helpers import BUYERS, eventually, paid_orders, set_addresses, wait_status

pytestmark = pytest.mark.timeout(120)


def scrape() -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(DELIVER)
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


async def test_a_delivery_moves_the_deliverers_series(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any
) -> None:
    orders = await paid_orders(engine, chain_pool, "drop", ["u1", "u2"])
    await set_addresses(chain_pool, {"u1": BUYERS[0], "u2": BUYERS[1]})
    running = make_deliverer()
    with DELIVER.watching(running.deliverer.stats):
        running.start()
        for order in orders:
            await wait_status(chain_pool, order.order_id, "confirmed")

        async def settled() -> bool:
            return scrape()["flashsale_deliver_in_flight"] == 0

        await eventually(settled)
        found = scrape()
        await running.halt()
    assert found["flashsale_deliver_submitted_total"] >= 2
    assert found["flashsale_deliver_confirmed_total"] == 2
    assert found["flashsale_deliver_ticks_total"] >= 1
    assert found["flashsale_deliver_failed_total"] == 0
    assert found["flashsale_deliver_chain_unreachable"] == 0
