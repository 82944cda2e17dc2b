"""The active sales: the ones ``persist`` and ``timers`` work on, so their idle cost does not
grow with every sale ever created (docs/design.md, "Active sales").

A sale enters the set at creation and again after any transition of its orders or its
settings (``Engine.touch``: a SADD, idempotent). It leaves (``retire``) once it is closed
for good, has no pending order to expire and no delivered order to complete, and its
event stream is fully acknowledged. The write-behind retires sales; a removal racing a
new event is undone: the set is checked again after the SREM, and the transition that
wrote the event adds its sale back after writing it. A retired slot that holds IP holds
is queued for housekeeping (engine/housekeeping.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from flashsale.engine import housekeeping
from flashsale.engine.codec import text
from flashsale.engine.keys import SaleKeys, active_sales, active_sales_seeded, sales_registry
from flashsale.engine.models import FAR_FUTURE_MS

AnyRedis = Any  # redis.asyncio.Redis or RedisCluster: every call names one key


async def active_sale_ids(redis: AnyRedis, namespace: str) -> list[str]:
    """The active sales, sorted; seeded once from the registry (a store from before)."""
    if not await redis.exists(active_sales_seeded(namespace)):
        every = await redis.smembers(sales_registry(namespace))
        if every:
            await redis.sadd(active_sales(namespace), *every)
        await redis.set(active_sales_seeded(namespace), "1")
    return sorted(text(m) for m in await redis.smembers(active_sales(namespace)))


async def retire(
    redis: AnyRedis,
    namespace: str,
    sale_id: str,
    now_ms: int,
    undrained: Callable[[], Awaitable[bool]],
) -> bool:
    """Take ``sale_id`` out of the active set when it is done (see the module); True then.
    ``undrained`` answers whether its stream still holds unacknowledged entries."""
    k = SaleKeys(namespace, sale_id)
    status, end_ms = await redis.hmget(k.meta, ["status", "end_ms"])
    if status is None:
        await redis.srem(active_sales(namespace), sale_id)  # no such sale (deleted)
        return True
    closed = text(status) == "closed" or now_ms >= int(end_ms or FAR_FUTURE_MS)
    if not closed or await redis.zcard(k.expiry) or await redis.zcard(k.completion):
        return False
    if await undrained():
        return False
    await redis.srem(active_sales(namespace), sale_id)
    if await undrained() or await redis.zcard(k.expiry):  # an event came meanwhile
        await redis.sadd(active_sales(namespace), sale_id)
        return False
    await housekeeping.queue_if_holds(redis, namespace, sale_id)  # its IP holds: garbage now
    return True
