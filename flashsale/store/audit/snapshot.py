"""What the audit's checks judge: one sale read in Redis and PostgreSQL, in a careful order.

1. the counters, the pool's length and the stream's last id in one MULTI;
2. PostgreSQL's aggregates (the sale row, orders by status, dead letters,
   serials held twice);
3. (deep) every order, chunk by chunk (orders.py), running the per-order checks;
4. the write-behind's lag; orders behind in PostgreSQL are compared again when
   the stream is seen drained;
5. the stream's last id again: unchanged means the sale was ``settled`` while
   it was read, so readings from different moments may be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from flashsale.engine.codec import text
from flashsale.engine.keys import SaleKeys, bucket_slot, slot_of_order
from flashsale.store.audit.orders import OrderScan, scan_orders, still_behind
from flashsale.store.audit.report import RedisCounts
from flashsale.store.events import int_or
from flashsale.store.lag import StreamLag, sale_lag
from flashsale.store.queries import q
from flashsale.store.streams import AnyRedis

_META = (
    "sale_id",
    "total",
    "drawn",
    "reserved",
    "sold",
    "per_user_limit",
    "peak_user_limit",
    "kept",
    # a bucketed drop (engine/buckets.py): each bucket's window and what it lent/borrowed
    "buckets",
    "first",
    "lent",
    "borrowed",
)


@dataclass(frozen=True)
class Snapshot:
    """One sale as the audit read it, with the connections the re-reading checks use."""

    redis: AnyRedis
    pool: asyncpg.Pool
    keys: SaleKeys  # the sale's own slot (bucket 0)
    slots: list[SaleKeys]  # every slot holding its orders: [keys], or its B buckets'
    sale_id: str
    deep: bool
    chunk: int
    in_redis: bool
    counts: RedisCounts
    sale_row: Any  # the sale in PostgreSQL (audit_sale query), None when absent
    max_limit: int | None  # the highest per-buyer limit the sale ever had
    by_status: dict[str, int]  # PostgreSQL's orders by status
    persisted: int
    dead_letters: int  # in PostgreSQL
    held_twice: list[Any]  # live serials held by two orders in PostgreSQL
    scan: OrderScan  # empty unless deep
    lag: StreamLag  # as read before any re-check
    still_behind: list[str] | None  # behind again when compared again (None: not compared)
    lag_count: int  # orders acknowledged by Redis not yet persisted
    drained: bool  # the stream had nothing left to write when last read
    settled: bool
    last_ids: list[str | None]  # each slot's stream last id when the counters were read

    async def still_settled(self) -> bool:
        """No event since the counters were read: a reading made now (PostgreSQL read
        again) may still be compared with them. During a live sale it is often not."""
        if not self.settled:
            return False
        return [(await read_counters(self.redis, slot))[2] for slot in self.slots] == self.last_ids


async def read_counters(redis: AnyRedis, keys: SaleKeys) -> tuple[list[Any], int, str | None]:
    """Counters, pool length and the stream's last id, read atomically (MULTI, one slot)."""
    pipe = redis.pipeline(transaction=True)
    pipe.hmget(keys.meta, list(_META))
    pipe.llen(keys.returned)
    pipe.execute_command("XINFO", "STREAM", keys.events)
    meta, returned, info = await pipe.execute(raise_on_error=False)
    last: str | None = None
    if isinstance(info, dict):
        raw = info.get("last-generated-id") or info.get(b"last-generated-id")
        last = text(raw) if raw is not None else None
    elif isinstance(info, list):
        fields = dict(zip((text(k) for k in info[::2]), info[1::2], strict=False))
        last = text(fields["last-generated-id"]) if "last-generated-id" in fields else None
    return list(meta), int(returned), last


async def read_snapshot(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    namespace: str,
    sale_id: str,
    *,
    deep: bool,
    chunk: int,
) -> Snapshot:
    keys = SaleKeys(namespace, sale_id)
    meta, returned, last_id = await read_counters(redis, keys)
    in_redis = meta[0] is not None
    slots = [keys] + [
        SaleKeys(namespace, bucket_slot(sale_id, b)) for b in range(1, int_or(meta[8], 1))
    ]
    last_ids = [last_id]
    counts = RedisCounts()
    if in_redis:
        counts.total = int_or(meta[1])
        for n, slot in enumerate(slots):
            if n:
                meta, returned, last_id = await read_counters(redis, slot)
                last_ids.append(last_id)
            # serials in this bucket's custody: drawn in its window, borrowed, not lent
            # (each bucket's counters are read atomically, so the sums add up exactly)
            custody = int_or(meta[2]) - int_or(meta[9]) + int_or(meta[11]) - int_or(meta[10])
            counts.drawn += custody
            counts.reserved += int_or(meta[3])
            counts.sold += int_or(meta[4])
            counts.returned += returned
            counts.kept += int_or(meta[7])
        counts.available = counts.total - counts.reserved - counts.sold

    async with pool.acquire() as conn:
        sale_row = await conn.fetchrow(q("audit_sale"), sale_id)
        by_status = {
            r["status"]: int(r["n"]) for r in await conn.fetch(q("audit_status_counts"), sale_id)
        }
        dead = int(await conn.fetchval(q("audit_dead_letters"), sale_id))
        twice = await conn.fetch(q("audit_live_serial_twice"), sale_id)
    max_limit = int(sale_row["max_per_user_limit"]) if sale_row else None
    if in_redis:
        max_limit = max(max_limit or 0, int_or(meta[5], 1), int_or(meta[6], 1))

    scan = OrderScan()
    if deep and in_redis:
        for slot in slots:
            await scan_orders(redis, pool, slot, sale_id, max_limit or 1, chunk, into=scan)
        counts.orders, counts.pending, counts.paid = scan.orders, scan.pending, scan.paid

    lag = await sale_lag(redis, namespace, slots)
    drained = lag.entries == 0
    lag_count = len(scan.behind) + scan.untracked if deep else lag.entries
    behind: list[str] | None = None
    if deep and in_redis and drained and lag_count:
        # Behind when compared, but maybe written since: compare those orders again.
        behind = []
        for slot in slots:
            ids = [o for o in scan.behind if slot_of_order(o) == slot.sale_id]
            behind += await still_behind(redis, pool, slot, sale_id, ids)
        drained = (await sale_lag(redis, namespace, slots)).entries == 0
        lag_count = len(behind) + scan.untracked
    last_after = [(await read_counters(redis, slot))[2] for slot in slots]
    return Snapshot(
        redis=redis,
        pool=pool,
        keys=keys,
        slots=slots,
        sale_id=sale_id,
        deep=deep,
        chunk=chunk,
        in_redis=in_redis,
        counts=counts,
        sale_row=sale_row,
        max_limit=max_limit,
        by_status=by_status,
        persisted=sum(by_status.values()),
        dead_letters=dead,
        held_twice=list(twice),
        scan=scan,
        lag=lag,
        still_behind=behind,
        lag_count=lag_count,
        drained=drained,
        settled=in_redis and last_after == last_ids,
        last_ids=last_ids,
    )
