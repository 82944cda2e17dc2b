"""How far the write-behind is behind: per sale, the stream entries not yet persisted.

Read by /metrics and /health (api/lag.py), ``flashsale sale watch``, the audit,
and ``Persister.drain``.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from flashsale.engine.codec import text
from flashsale.engine.keys import PERSIST_GROUP, SaleKeys, sales_registry
from flashsale.store.streams import AnyRedis, group_info, id_key


class StreamLag(msgspec.Struct, kw_only=True):
    sale_id: str
    entries: int  # not yet acknowledged: pending (delivered) + never delivered
    pending: int
    undelivered: int
    oldest_age_ms: int  # age of the oldest entry not yet acknowledged (0 when none)
    consumers: int


async def stream_lag(redis: AnyRedis, namespace: str, sale_id: str) -> StreamLag:
    """Entries of a sale's stream not yet persisted, and the age of the oldest (metrics)."""
    key = SaleKeys(namespace, sale_id).events
    now_ms = int(time.time() * 1000)
    info = await group_info(redis, key)
    if info is None:  # no consumer has started: the whole stream is lag
        length = int(await redis.xlen(key))
        first = await redis.xrange(key, count=1) if length else []
        age = now_ms - id_key(text(first[0][0]))[0] if first else 0
        return StreamLag(
            sale_id=sale_id,
            entries=length,
            pending=0,
            undelivered=length,
            oldest_age_ms=max(age, 0),
            consumers=0,
        )
    last = text(info["last-delivered-id"])
    pending = int(info["pending"])
    undelivered_head = await redis.xrange(key, min="(" + last, count=1)
    lag = info.get("lag")
    if lag is None:  # Redis cannot tell (entries deleted): count them, bounded
        rest = await redis.xrange(key, min="(" + last, count=100_000)
        undelivered = len(rest or [])
    else:
        undelivered = int(lag)
    oldest: list[int] = []
    if pending:
        summary = await redis.xpending(key, PERSIST_GROUP)
        if summary and summary.get("min"):  # acknowledged since XINFO: then none
            oldest.append(id_key(text(summary["min"]))[0])
    if undelivered_head:
        oldest.append(id_key(text(undelivered_head[0][0]))[0])
    age = now_ms - min(oldest) if oldest else 0
    return StreamLag(
        sale_id=sale_id,
        entries=pending + undelivered,
        pending=pending,
        undelivered=undelivered,
        oldest_age_ms=max(age, 0),
        consumers=int(info["consumers"]),
    )


async def lag(
    redis: AnyRedis,
    namespace: str,
    sale_id: str | None = None,
    *,
    max_sales: int | None = None,
    concurrency: int = 16,
) -> list[StreamLag]:
    """Lag of one sale, or of every sale in the registry (for /metrics and health).

    ``max_sales`` bounds the work of one call (the first sales by id);
    ``concurrency`` sales are read at once.
    """
    if sale_id is not None:
        return [await stream_lag(redis, namespace, sale_id)]
    sale_ids = sorted(text(m) for m in await redis.smembers(sales_registry(namespace)))
    if max_sales is not None:
        sale_ids = sale_ids[:max_sales]
    gate = asyncio.Semaphore(concurrency)

    async def one(sid: str) -> StreamLag:
        async with gate:
            return await stream_lag(redis, namespace, sid)

    return list(await asyncio.gather(*(one(sid) for sid in sale_ids)))


async def sale_lag(redis: AnyRedis, namespace: str, slots: list[SaleKeys]) -> StreamLag:
    """The lag of a sale over its slots' streams (one, or a bucketed drop's B): sums, and
    the oldest entry's age. Its ``sale_id`` is the first slot's, the sale's own."""
    lags = [await stream_lag(redis, namespace, slot.sale_id) for slot in slots]
    if len(lags) == 1:
        return lags[0]
    return StreamLag(
        sale_id=lags[0].sale_id,
        entries=sum(lag.entries for lag in lags),
        pending=sum(lag.pending for lag in lags),
        undelivered=sum(lag.undelivered for lag in lags),
        oldest_age_ms=max(lag.oldest_age_ms for lag in lags),
        consumers=max(lag.consumers for lag in lags),
    )
