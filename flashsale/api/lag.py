"""Write-behind lag as the HTTP layer reports it, at a cost independent of history.

``flashsale.store.lag.stream_lag`` is the one definition (per sale: stream
entries not yet persisted, pending or never delivered, and the age of the
oldest). ``/health`` and ``/metrics`` read it for the *active* sales only: the
engine's active-sales set (``keys.active_sales``: a sale enters at creation and
leaves once closed and drained). Until a deployment's engine keeps that set,
a sample of ``FALLBACK_SCAN`` sales of the registry of every sale (a few bounded
``SSCAN`` calls) stands in for it, so the cost stays flat with 10,000 closed sales.
``flashsale sale watch`` reads named sales through ``stream_lags``.

A bucketed drop has a stream per bucket, and its buckets' slots (``<id>.<b>``) enter
the active set as the sale's own does: every reading here is per *sale*, labelled with
the sale id, over all its buckets (``store.lag.sale_lag``: entries summed, so the
sales' gauges add up to the total; the oldest entry's age the largest of the buckets').
"""

from __future__ import annotations

import asyncio
import time

from flashsale.engine.codec import text
from flashsale.engine.engine import Engine
from flashsale.engine.keys import SaleKeys, active_sales, sale_of_slot, sales_registry
from flashsale.store.lag import StreamLag, sale_lag

MAX_SALES = 1000  # bounded work per scrape, whatever the active set holds
FALLBACK_SCAN = 100  # without an active set: this many sales of the registry
FALLBACK_CALLS = 4  # SSCAN's COUNT is a hint: a few calls make the sample its full size
CONCURRENCY = 16


async def active_sale_ids(engine: Engine) -> list[str]:
    """The sales whose lag /health and /metrics report (see the module docstring)."""
    redis = engine.redis
    members = list(await redis.smembers(active_sales(engine.namespace)))
    if not members:
        members = await _registry_sample(engine)
    # a bucket's slot stands for its sale (once, however many of its buckets are active)
    return sorted({sale_of_slot(text(m)) for m in members})[:MAX_SALES]


async def _registry_sample(engine: Engine) -> list[bytes | str]:
    """Up to FALLBACK_SCAN members in at most FALLBACK_CALLS SSCANs: the same work per
    scrape however big the registry grows (one SSCAN alone returns 90 or 110)."""
    key = sales_registry(engine.namespace)
    sample: list[bytes | str] = []
    cursor = 0
    for _ in range(FALLBACK_CALLS):
        cursor, found = await engine.redis.sscan(key, cursor, count=FALLBACK_SCAN - len(sample))
        sample.extend(found)
        if cursor == 0 or len(sample) >= FALLBACK_SCAN:
            break
    return sample[:FALLBACK_SCAN]


async def _each(engine: Engine, sale_ids: list[str]) -> list[StreamLag]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(sale_id: str) -> StreamLag:
        async with gate:
            slots = [engine.keys(slot) for slot in await engine.slots(sale_id)]
            return await sale_lag(engine.redis, engine.namespace, slots)

    return list(await asyncio.gather(*(one(sid) for sid in sale_ids)))


async def sale_lags(engine: Engine, sale_ids: list[str] | None = None) -> list[StreamLag]:
    """Lag of the given sales, or of the active ones: one reading per sale, over its
    buckets."""
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
