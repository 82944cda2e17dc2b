"""Helpers of the write-behind tests: sales, fast purchases, consumers, private servers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, Sale, SaleCreate, SerialsSpec
from flashsale.errors import FlashsaleError
from flashsale.store.persist import PersistConfig

# an idle write-behind whose pauses outlast any test: a poll every 30 s, a blocking read
# of 20 s, no discovery, reclaim or trim for a minute
ASLEEP = PersistConfig(
    idle_sleep_s=30.0,
    idle_block_s=20.0,
    discover_every_s=60.0,
    reclaim_every_s=60.0,
    trim_every_s=60.0,
)


async def make_sale(engine: Engine, sale_id: str, *, size: int = 100, **overrides: Any) -> Sale:
    fields: dict[str, Any] = {
        "sale_id": sale_id,
        "name": f"sale {sale_id}",
        "serials": SerialsSpec(range=(1, size)),
        "start_at": datetime.now(UTC) - timedelta(minutes=1),
        "price_cents": 990,
    }
    fields.update(overrides)
    return await engine.create_sale(SaleCreate(**fields))


async def buy_many(
    engine: Engine, sale_id: str, users: list[str], *, concurrency: int = 256
) -> list[Order]:
    """Purchases through the engine directly (auto-pipelined); returns the successes."""
    done: list[Order] = []
    queue = list(reversed(users))

    async def worker() -> None:
        while queue:
            user = queue.pop()
            try:
                done.append((await engine.purchase(sale_id, user)).order)
            except FlashsaleError:
                pass

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def persisted(pool: asyncpg.Pool, order_id: str, timeout_s: float) -> bool:
    """Whether the order reaches PostgreSQL within ``timeout_s`` (the write-behind's
    progress shows nowhere else to wait on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await pool.fetchval("SELECT 1 FROM orders WHERE order_id = $1", order_id):
            return True
        await asyncio.sleep(0.05)
    return False
