"""Housekeeping: what a bucketed drop leaves in Redis once nothing can use it, deleted by
the timers a bounded amount per tick (docs/design.md, "Bucketed drops", housekeeping).

- **IP holds of a finished sale.** ``ip_hold-3`` records a hold per order in the
  address's IP home bucket (``ipholds``: ``o:<order id>`` and ``i:<ip>`` fields); the
  hold of an order that stays live (paid, delivered) is never ended, so a finished drop
  keeps them forever. When the write-behind retires a slot (``active.retire``: closed
  for good, nothing to expire or complete, its stream drained) that holds any, the slot
  enters the queue ``<ns>:sales:housekeep``; each tick takes a few slots from it, checks
  again that the slot's sale is closed or past its end (a live sale's holds are never
  touched) and deletes at most ``budget`` fields (HSCAN, HDEL); the slot leaves the
  queue once its ``ipholds`` hash is gone. The address counts (``ips``) stay: they are
  the sale's record, like its buyers, and no purchase reads them any more.

- **Orphan buckets of a creation stopped midway** (``Engine.drop_orphan_buckets``).
  Each creation attempt of a bucketed drop is indexed in ``<ns>:sales:creating`` (member
  ``"<sale_id> <token>"``, scored by when its token was drawn) and leaves the index when
  it finishes. An entry older than ``ORPHAN_GRACE_MS`` is an attempt that died (or one
  refused by a newer attempt): ``abandon_create-2`` on bucket 0's slot answers which
  tokens are dead, fencing the attempt first when it is still the last one drawn (so it
  can never create bucket 0 if it resumes), and ``drop_orphan-6`` deletes each bucket
  b > 0 whose token is dead, checked in the bucket's own slot, so a bucket that a newer
  creation wrote is never touched. Bucket 0's token counter stays (it orders attempts).

Every command names one key of one slot (or the queue), so it runs on a Redis Cluster.
"""

from __future__ import annotations

from typing import Any

from flashsale.engine.codec import text
from flashsale.engine.keys import SaleKeys, housekeeping_queue
from flashsale.engine.models import FAR_FUTURE_MS

AnyRedis = Any  # redis.asyncio.Redis or RedisCluster: every call names one key
SLOTS_PER_TICK = 16  # queued slots looked at per tick
# A creation attempt of a bucketed drop still unfinished this long after its token was
# drawn is dead (a creation takes milliseconds): its buckets are orphans to delete.
ORPHAN_GRACE_MS = 10 * 60 * 1000
# How long a deleted orphan's token stays behind (create_sale-6 refuses an older one).
TOMBSTONE_MS = 24 * 3600 * 1000


async def queue_if_holds(redis: AnyRedis, namespace: str, slot: str) -> None:
    """A retired slot with IP holds goes to housekeeping (nothing queued without any)."""
    if await redis.exists(SaleKeys(namespace, slot).ipholds):
        await redis.sadd(housekeeping_queue(namespace), slot)


async def finished(redis: AnyRedis, k: SaleKeys, now_ms: int) -> bool:
    """No purchase can reach this slot again: closed for good, or past its end (a sale
    past its end can't be reopened), or no such slot."""
    status, end_ms = await redis.hmget(k.meta, ["status", "end_ms"])
    if status is None:
        return True
    return text(status) == "closed" or now_ms >= int(end_ms or FAR_FUTURE_MS)


async def drop_ip_holds(redis: AnyRedis, namespace: str, now_ms: int, *, budget: int) -> int:
    """One tick of it: the holds of queued finished slots, at most ``budget`` fields
    deleted in all; answers how many. A queued slot whose sale is live leaves the queue
    untouched (its next retirement queues it again)."""
    queue = housekeeping_queue(namespace)
    dropped = 0
    for member in await redis.srandmember(queue, SLOTS_PER_TICK) or []:
        if dropped >= budget:
            break
        slot = text(member)
        k = SaleKeys(namespace, slot)
        if not await finished(redis, k, now_ms):
            await redis.srem(queue, slot)
            continue
        _, fields = await redis.hscan(k.ipholds, 0, count=budget - dropped)
        batch = list(fields)[: budget - dropped]  # a small hash answers whole
        if batch:
            dropped += await redis.hdel(k.ipholds, *batch)
        if not await redis.exists(k.ipholds):
            await redis.srem(queue, slot)
    return dropped
