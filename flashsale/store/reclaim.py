"""Entries another consumer left pending: take them over, or move them to the dead letters.

Every ``reclaim_every_s`` the consumer (persist.py) takes over with XAUTOCLAIM
the entries idle for ``min_idle_ms`` (their consumer died). An entry goes to the
dead letters after ``max_deliveries`` deliveries that FAILED (each counted with
its reason: poison, or rows PostgreSQL refuses). Deliveries cut short by a
crashing consumer count none: such entries are retried much longer
(``max_crash_deliveries``), so a run of kill -9 never dead-letters a good order.
The dead letter is a stream (and a table, when PostgreSQL answers) written
atomically with the entry's XACK.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Protocol

import asyncpg

from flashsale.engine.codec import text
from flashsale.engine.keys import PERSIST_GROUP, SaleKeys
from flashsale.store.events import int_or, readable
from flashsale.store.queries import q
from flashsale.store.streams import AnyRedis, Entry, id_key
from flashsale.store.transient import REFUSED, TRANSIENT_PG

log = logging.getLogger("flashsale.persist")


class ReclaimLimits(Protocol):
    """The settings the reclaim reads (``PersistConfig`` has them)."""

    @property
    def batch_size(self) -> int: ...
    @property
    def min_idle_ms(self) -> int: ...
    @property
    def max_deliveries(self) -> int: ...
    @property
    def max_crash_deliveries(self) -> int: ...


class ReclaimCounts(Protocol):
    """The counters the reclaim adds to (``PersistStats`` has them)."""

    entries: int
    reclaimed: int
    dead_lettered: int
    vanished: int


class Reclaimer:
    """One consumer's reclaim: a cursor per sale, walking the group's pending entries."""

    def __init__(
        self,
        redis: AnyRedis,
        pool: asyncpg.Pool,
        consumer: str,
        limits: ReclaimLimits,
        counts: ReclaimCounts,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.consumer = consumer
        self.limits = limits
        self.counts = counts
        self._cursor: dict[str, str] = {}

    async def claim(self, sale_id: str, keys: SaleKeys) -> tuple[int, list[Entry]]:
        """Take over idle entries: (how many were claimed, those to write again).

        The hopeless ones are dead-lettered here; the caller writes the rest.
        """
        cursor = self._cursor.get(sale_id, "0-0")
        reply = await self.redis.xautoclaim(
            keys.events,
            PERSIST_GROUP,
            self.consumer,
            self.limits.min_idle_ms,
            start_id=cursor,
            count=self.limits.batch_size,
        )
        # Redis >= 7: [next cursor, [(id, fields)...], [ids deleted while pending]]
        self._cursor[sale_id] = text(reply[0])
        claimed: list[Entry] = [(text(i), f or {}) for i, f in reply[1]]
        vanished = [text(i) for i in reply[2]] if len(reply) > 2 else []
        if vanished:
            self.counts.vanished += len(vanished)
            log.error(
                "sale %s: %d pending entries vanished from the stream: %s",
                sale_id,
                len(vanished),
                vanished[:5],
            )
        if not claimed:
            return 0, []
        self.counts.reclaimed += len(claimed)
        deliveries = await self._deliveries(keys, claimed)
        max_deliveries = self.limits.max_deliveries
        over = [e for e in claimed if deliveries.get(e[0], 1) > max_deliveries]
        reasons: dict[str, str] = {}
        failures: dict[str, int] = {}
        if over:
            fields = [f for e in over for f in (e[0], f"{e[0]}#n")]
            values = await self.redis.hmget(keys.persist_failures, fields)
            for e, why, n in zip(over, values[::2], values[1::2], strict=True):
                if why:
                    reasons[e[0]] = text(why)
                failures[e[0]] = int_or(n)
        doomed = [
            e
            for e in over
            if failures.get(e[0], 0) >= max_deliveries
            or deliveries.get(e[0], 1) > self.limits.max_crash_deliveries
        ]
        if doomed:
            await self._dead_letter(sale_id, keys, doomed, deliveries, reasons)
        gone = {e[0] for e in doomed}
        return len(claimed), [e for e in claimed if e[0] not in gone]

    async def _deliveries(self, keys: SaleKeys, entries: list[Entry]) -> dict[str, int]:
        ids = sorted((e[0] for e in entries), key=id_key)
        rows = await self.redis.xpending_range(
            keys.events,
            PERSIST_GROUP,
            min=ids[0],
            max=ids[-1],
            count=len(ids) * 2 + 10,
            consumername=self.consumer,
        )
        return {text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def _dead_letter(
        self,
        sale_id: str,
        keys: SaleKeys,
        entries: list[Entry],
        deliveries: dict[str, int],
        reasons: dict[str, str],
    ) -> None:
        rows = []
        pipe = self.redis.pipeline(transaction=True)  # one slot: dead letter and XACK together
        for entry_id, fields in entries:
            why = reasons.get(
                entry_id, "never persisted: every consumer holding it died (crash loop?)"
            )
            payload = json.dumps(readable(fields))
            count = deliveries.get(entry_id, 0)
            pipe.xadd(
                keys.persist_dead,
                {
                    "sale_id": sale_id,
                    "stream_id": entry_id,
                    "reason": why,
                    "deliveries": count,
                    "payload": payload,
                    "consumer": self.consumer,
                },
            )
            # the row for PostgreSQL: text it cannot store (NUL, the likely poison) repaired
            rows.append(
                (sale_id, entry_id, count, _storable(why), payload.replace("\\u0000", "\ufffd"))
            )
            log.error(
                "sale %s: entry %s dead-lettered after %d deliveries: %s",
                sale_id,
                entry_id,
                count,
                why,
            )
        pipe.xack(keys.events, PERSIST_GROUP, *[e[0] for e in entries])
        pipe.hdel(keys.persist_failures, *[f for e in entries for f in (e[0], f"{e[0]}#n")])
        # the Redis stream is the record of last resort: a refused row never blocks the XACK
        with contextlib.suppress(*TRANSIENT_PG, *REFUSED):
            async with self.pool.acquire() as conn:
                await conn.executemany(q("insert_dead_letter"), rows)
        await pipe.execute()
        self.counts.dead_lettered += len(entries)
        self.counts.entries += len(entries)


def _storable(value: str) -> str:
    """``value`` with the one character PostgreSQL's text refuses (NUL) replaced."""
    return value.replace("\x00", "\ufffd")
