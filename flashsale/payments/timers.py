"""The timers: payment timeouts, active queries of lost callbacks, repairs, refund retries.

Safe to run as several processes at once:

- active queries, repairs and refund retries are claimed in PostgreSQL with
  ``FOR UPDATE SKIP LOCKED`` and a lease (``next_query_at`` moved ahead by
  ``lease_s``): the HTTP calls happen after the claim committed, and work of a
  process that died is taken over when its lease runs out;
- an expiry is claimed in Redis with ``SET NX PX`` on a key of the sale's slot;
  the expiry itself is one Lua script, exactly once whoever runs it.

One tick: expire due orders (asking the provider first), query attempts whose
callback is overdue, settle succeeded payments whose order confirmation did
not reach Redis, retry approved refunds, finish paid orders' cancellations a
crash cut in two (``Cancellation.finish_stalled``), give back the coins and close
the bills of released orders a crash cut off (``release.finish_stalled_releases``),
sweep a bucketed drop's stale claims, level the buckets a stopped tune left behind, and
delete what finished bucketed drops left (``engine/housekeeping.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from flashsale.engine import errors as engine_errors
from flashsale.engine.keys import sale_id_of_order, sale_of_slot
from flashsale.payments.queries import q
from flashsale.payments.refunds import Refunds
from flashsale.payments.release import finish_stalled_releases
from flashsale.payments.service import PaymentService, gather_bounded

log = logging.getLogger("flashsale.payments.timers")
HOUSEKEEPING_BUDGET = 1000  # IP-hold fields housekeeping deletes per tick at most


@dataclass(slots=True)
class TickStats:
    expired: int = 0
    expiry_deferred: int = 0
    queried: int = 0
    repaired: int = 0
    refunds: int = 0
    completed: int = 0
    claims_swept: int = 0
    leveled: int = 0  # buckets a stopped tune had left behind, brought level
    holds_dropped: int = 0  # IP-hold fields of finished sales deleted (housekeeping)
    orphans_dropped: int = 0  # buckets of creations stopped midway deleted (housekeeping)
    errors: int = 0


@dataclass(slots=True)
class TimerTotals:
    ticks: int = 0
    last: TickStats = field(default_factory=TickStats)
    expired: int = 0
    expiry_deferred: int = 0
    queried: int = 0
    repaired: int = 0
    refunds: int = 0
    errors: int = 0


def expiry_claim_key(service: PaymentService, order_id: str) -> str:
    key: str = service.engine.keys(sale_id_of_order(order_id)).payment_expiry_claim(order_id)
    return key


class Timers:
    def __init__(
        self,
        service: PaymentService,
        *,
        interval_s: float = 0.5,
        batch: int = 200,
    ) -> None:
        self.service = service
        self.refunds = Refunds(service)
        self.interval_s = interval_s
        self.batch = batch
        self.totals = TimerTotals()
        self._active: list[str] = []  # the active sales' slots, read once per tick

    async def tick(self) -> TickStats:
        stats = TickStats()
        try:
            self._active = await self.service.engine.active_sale_ids()
        except Exception:  # the PostgreSQL steps still run; the Redis ones see no sale
            self._active = []
            stats.errors += 1
            log.exception("reading the active sales failed")
        steps = (
            self._expire,
            self._complete,
            self._query,
            self._repair,
            self._retry_refunds,
            self._finish_cancels,
            self._finish_releases,
            self._sweep_claims,
            self._level_buckets,
            self._drop_ip_holds,
            self._drop_orphans,
        )
        for step in steps:
            try:
                await step(stats)
            except Exception:  # one failing step must not stop the others
                stats.errors += 1
                log.exception("timer step %s failed", step.__name__)
        t = self.totals
        t.ticks += 1
        t.last = stats
        t.expired += stats.expired
        t.queried += stats.queried
        t.repaired += stats.repaired
        t.expiry_deferred += stats.expiry_deferred
        t.refunds += stats.refunds
        t.errors += stats.errors
        return stats

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            stats = await self.tick()
            busy = stats.queried + stats.repaired + stats.expired >= self.batch
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)

    # -- steps ---------------------------------------------------------------------

    async def _expire(self, stats: TickStats) -> None:
        service = self.service
        engine = service.engine
        claims: list[str] = []
        for sale_id in self._active:
            for order_id in await engine.due_expiries(sale_id, limit=self.batch):
                claimed = await engine.redis.set(
                    expiry_claim_key(service, order_id),
                    "1",
                    nx=True,
                    px=int(service.settings.expiry_retry_s * 1000),
                )
                if claimed:
                    claims.append(order_id)
        results = await gather_bounded(
            service.settings.concurrency, [service.expire_order(o) for o in claims]
        )
        for order_id, result in zip(claims, results, strict=True):
            if isinstance(result, BaseException):
                stats.errors += 1
                log.error("expiring %s failed: %r", order_id, result)
            elif result == "expired":
                stats.expired += 1
            elif result == "deferred":
                stats.expiry_deferred += 1

    async def _complete(self, stats: TickStats) -> None:
        """Delivered orders whose sale's after-sales window passed: delivered -> completed
        (engine.complete checks the window again; a replay or a moved order is fine)."""
        engine = self.service.engine
        for sale_id in self._active:
            for order_id in await engine.due_completions(sale_id, limit=self.batch):
                try:
                    _, replay = await engine.complete(order_id)
                except (engine_errors.NotDue, engine_errors.OrderNotPending):
                    continue
                stats.completed += not replay

    async def _sweep_claims(self, stats: TickStats) -> None:
        """A bucketed drop's claims left by purchases that stopped between taking a serial
        from another bucket and placing the order (engine.sweep_claims): the serial goes
        back once its order id is fenced. Unbucketed sales cost nothing here (B is known)."""
        engine = self.service.engine
        for slot in self._active:
            if await engine.buckets_of(sale_of_slot(slot)) > 1:
                stats.claims_swept += await engine.sweep_claims(slot)

    async def _level_buckets(self, stats: TickStats) -> None:
        """A bucketed drop's tune that stopped between buckets (a crash, a lost connection)
        completes here: the buckets behind bucket 0's settings version take them
        (engine.level_buckets), so ``tune_pending`` clears within a tick. Each sale once,
        whichever of its slots is active (a bucket still open behind a closed bucket 0
        keeps its slot active)."""
        engine = self.service.engine
        for sale_id in dict.fromkeys(sale_of_slot(slot) for slot in self._active):
            try:  # an unbucketed sale answers 0 at once (its B is known per process)
                stats.leveled += await engine.level_buckets(sale_id)
            except Exception:  # one sale's trouble must not keep the others behind
                stats.errors += 1
                log.exception("levelling the buckets of %s failed", sale_id)

    async def _drop_ip_holds(self, stats: TickStats) -> None:
        """Housekeeping (engine/housekeeping.py): the IP holds of finished bucketed drops,
        a bounded amount per tick; idle, one read of an empty queue."""
        engine = self.service.engine
        stats.holds_dropped += await engine.drop_finished_ip_holds(budget=HOUSEKEEPING_BUDGET)

    async def _drop_orphans(self, stats: TickStats) -> None:
        """Housekeeping: the buckets of creations stopped midway long ago, a few attempts
        per tick; idle, one read of the index of creations (empty, or only recent ones)."""
        stats.orphans_dropped += await self.service.engine.drop_orphan_buckets()

    async def _query(self, stats: TickStats) -> None:
        service = self.service
        rows = await service.pool.fetch(
            q("claim_due_queries"), self.batch, service.settings.lease_s
        )
        results = await gather_bounded(
            service.settings.concurrency, [service.query_attempt(r) for r in rows]
        )
        stats.queried += len(rows)
        stats.errors += sum(isinstance(r, BaseException) for r in results)
        for r in results:
            if isinstance(r, BaseException):
                log.error("active query failed: %r", r)

    async def _repair(self, stats: TickStats) -> None:
        """Internal loss: succeeded in PostgreSQL, order confirmation never reached Redis."""
        service = self.service
        rows = await service.pool.fetch(
            q("claim_due_settlements"), self.batch, service.settings.lease_s
        )
        results = await gather_bounded(
            service.settings.concurrency, [service.settle(r) for r in rows]
        )
        stats.repaired += len(rows)
        stats.errors += sum(isinstance(r, BaseException) for r in results)

    async def _retry_refunds(self, stats: TickStats) -> None:
        stats.refunds += await self.refunds.retry_due(self.batch)

    async def _finish_cancels(self, stats: TickStats) -> None:
        service = self.service
        stats.repaired += await service.cancellation.finish_stalled(
            self.batch, service.settings.repair_after_s
        )

    async def _finish_releases(self, stats: TickStats) -> None:
        """Coins and bills of released orders a crash cut off from their transition."""
        service = self.service
        stats.repaired += await finish_stalled_releases(
            service.pool, service.engine, self.batch, service.settings.repair_after_s
        )
