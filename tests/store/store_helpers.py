"""Helpers of the write-behind tests: sales, fast purchases, consumers, private servers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, Sale, SaleCreate, SerialsSpec
from flashsale.errors import FlashsaleError


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
