"""Write-behind lag as the HTTP layer reports it, at a cost independent of history.

``flashsale.store.lag.stream_lag`` is the one definition (per sale: stream
entries not yet persisted, pending or never delivered, and the age of the
oldest). ``/health`` and ``/metrics`` read it for the *active* sales only: the
engine's active-sales set (``keys.active_sales``: a sale enters at creation and
leaves once closed and drained). Until a deployment's engine keeps that set,
one bounded ``SSCAN`` of the registry of every sale stands in for it (at most
``MAX_SALES`` sales a scrape), so the cost stays flat with 10,000 closed sales.
``flashsale sale watch`` reads named sales through ``stream_lags``.
"""

from __future__ import annotations

import asyncio
import time

from flashsale.engine.codec import text
from flashsale.engine.engine import Engine
from flashsale.engine.keys import SaleKeys, active_sales, sales_registry
from flashsale.store.lag import StreamLag, stream_lag

MAX_SALES = 1000  # bounded work per scrape, whatever the active set holds
FALLBACK_SCAN = 100  # without an active set: one SSCAN of about this many sales
CONCURRENCY = 16


async def active_sale_ids(engine: Engine) -> list[str]:
    """The sales whose lag /health and /metrics report (see the module docstring)."""
    redis = engine.redis
    members = list(await redis.smembers(active_sales(engine.namespace)))
    if not members:
        _, members = await redis.sscan(sales_registry(engine.namespace), 0, count=FALLBACK_SCAN)
    return sorted(text(m) for m in members)[:MAX_SALES]


async def _each(engine: Engine, sale_ids: list[str]) -> list[StreamLag]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(sale_id: str) -> StreamLag:
        async with gate:
            return await stream_lag(engine.redis, engine.namespace, sale_id)

    return list(await asyncio.gather(*(one(sid) for sid in sale_ids)))


async def sale_lags(engine: Engine, sale_ids: list[str] | None = None) -> list[StreamLag]:
    """Lag of the given sales, or of the active ones."""
    if sale_ids is None:
        sale_ids = await active_sale_ids(engine)
    return await _each(engine, sale_ids[:MAX_SALES])


async def announced(engine: Engine, sale_ids: list[str]) -> set[str]:
    """Those of ``sale_ids`` whose opening has passed: the public may know of them."""
    now_ms = int(time.time() * 1000)
    starts = await asyncio.gather(
        *(engine.redis.hget(SaleKeys(engine.namespace, sid).meta, "start_ms") for sid in sale_ids)
    )
    return {
        sid for sid, start in zip(sale_ids, starts, strict=True) if start and int(start) <= now_ms
    }


async def stream_lags(engine: Engine, sale_ids: list[str] | None = None) -> dict[str, int]:
    """Entries not yet persisted, by sale."""
    return {item.sale_id: item.entries for item in await sale_lags(engine, sale_ids)}
