"""The write-behind: every sale's event stream into PostgreSQL, at least once, idempotently.

One consumer group (``persist``) per sale stream; any number of consumers (tasks
or processes) share it. A consumer works on the active sales (engine/active.py)
and retires those closed and drained. It:

1. reads a batch with XREADGROUP (and, every ``reclaim_every_s``, takes over
   entries another consumer left pending for ``min_idle_ms`` with XAUTOCLAIM);
2. writes the whole batch in ONE transaction: sale changes, then one upsert of
   the orders (each order's highest version; a stored row with a higher
   version is never overwritten), then the order history;
3. XACKs the batch only after COMMIT. A crash anywhere before the XACK leaves
   the entries pending; another consumer reclaims them and the upserts make the
   second write a no-op. An entry that fails (poison, or a row PostgreSQL
   refuses) is isolated with a savepoint per entry, left pending with its
   reason, and after ``max_deliveries`` deliveries moved to the dead-letter
   stream (and table) with that reason;
4. trims the stream below the oldest entry the group still needs (XTRIM MINID),
   so memory stays bounded during a long sale.

With several active sales a round reads every sale's new entries together and
writes them in ONE transaction (a commit per round, not per sale); a refusal or
a poison entry sends that round's entries the one-sale way, with its isolation.
Idle, a consumer blocks on all its sales' streams at once rather than polling each
of them: one XREADGROUP BLOCK on one server, one per stream at once on a Redis
Cluster (cluster_wait.py).

PostgreSQL down: the batch in hand is retried with capped exponential back-off
(purchases go on in Redis, the stream grows). SIGTERM: the batch in hand is
finished (committed and acknowledged) and the consumer stops.

The reclaim and the dead letters are in reclaim.py, the lag reading (which
``drain`` waits on) in lag.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import RedisCluster
from redis.exceptions import ResponseError

from flashsale.engine import statuses
from flashsale.engine.active import active_sale_ids, retire
from flashsale.engine.codec import text
from flashsale.engine.keys import PERSIST_GROUP, SaleKeys, sale_of_slot
from flashsale.engine.models import FAR_FUTURE_MS
from flashsale.settings import PersistSettings
from flashsale.store.cluster_wait import wait_on_cluster
from flashsale.store.events import (
    Event,
    OrderEvent,
    PoisonEntry,
    SaleEvent,
    decode,
)
from flashsale.store.lag import stream_lag
from flashsale.store.queries import q
from flashsale.store.reclaim import Reclaimer
from flashsale.store.streams import (
    AnyRedis,
    Entry,
    entries_by_stream,
    group_info,
    id_key,
    next_id,
    read_new_on_cluster,
    stream_entries,
)
from flashsale.store.transient import REFUSED, TRANSIENT_PG, TRANSIENT_REDIS

log = logging.getLogger("flashsale.persist")
# Redis ends a blocking read on the timer tick after its BLOCK ran out, up to 1/hz late
# (100 ms at the default hz 10); with a loaded machine's delays on top, a blocking read is
# kept this far below the client's read deadline, so it never times out for being idle
READ_MARGIN_S = 0.25
# redis-py's read deadline of a connection built without one (its DEFAULT_SOCKET_TIMEOUT)
REDIS_PY_DEADLINE_S = 5.0
# reading several sales together: at least this many entries per stream and read, so a
# busy sale among many still moves in batches (batch_size is shared among the streams)
TOGETHER_MIN_COUNT = 50


# The write-behind's knobs, declared with their FLASHSALE_PERSIST_<FIELD> variables.
PersistConfig = PersistSettings


class PersistStats(msgspec.Struct, kw_only=True):
    batches: int = 0
    entries: int = 0  # acknowledged after commit (or dead-lettered)
    reclaimed: int = 0
    dead_lettered: int = 0
    failed_deliveries: int = 0
    pg_retries: int = 0
    trimmed: int = 0
    vanished: int = 0  # pending entries deleted from the stream before being persisted


def read_deadline(redis: AnyRedis) -> float | None:
    """The client's read deadline in seconds (``socket_timeout``; redis-py's own default
    when the client was built without one, as ``Redis.from_url`` is); None: none."""
    kwargs = redis.get_connection_kwargs()
    if "socket_timeout" not in kwargs:
        return REDIS_PY_DEADLINE_S
    deadline = kwargs["socket_timeout"]
    return float(deadline) if deadline else None


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Persister:
    def __init__(
        self,
        redis: AnyRedis,
        pool: asyncpg.Pool,
        *,
        namespace: str = "fs",
        consumer: str | None = None,
        config: PersistConfig | None = None,
        sales: Sequence[str] | None = None,
        ack_before_commit: bool = False,
    ) -> None:
        """``sales`` pins the consumer to those sales (else the active sales, engine/active.py).

        ``ack_before_commit`` is a deliberately broken mode for the fault tests only:
        it acknowledges a batch before its transaction commits, so a crash in
        between loses the batch. Production code never sets it.
        """
        self.redis = redis
        self.pool = pool
        self.namespace = namespace
        self.name = consumer or consumer_name()
        self.config = config or PersistConfig()
        self.stats = PersistStats()
        self._pinned = list(sales) if sales is not None else None
        self._sales: list[str] = list(sales or [])
        self._groups: set[str] = set()
        self._reclaim_at: dict[str, float] = {}
        self._reclaimer = Reclaimer(redis, pool, self.name, self.config, self.stats)
        self._trim_at: dict[str, float] = {}
        self._acked_since_trim: set[str] = set()
        self._retire_check_at: dict[str, float] = {}
        self._discover_at = 0.0
        self._idle: dict[str, int] = {}  # rounds in a row a sale had nothing to write
        self._ack_before_commit = ack_before_commit
        self._stop = asyncio.Event()

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; the batch in hand is always finished first."""
        if stop is not None:
            self._stop = stop
        backoff = self.config.backoff_initial_s
        while not self._stop.is_set():
            try:
                if await self.step() == 0:
                    await self._idle_until_work()
                backoff = self.config.backoff_initial_s
            except TRANSIENT_REDIS as exc:
                log.warning("redis unavailable (%s); retrying in %.2fs", exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
                continue
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the group (a restart without AOF): create it again from id 0;
                # what is still in the stream is written again, idempotently.
                log.warning("consumer group vanished (%s); recreating", exc)
                self._groups.clear()
                continue

    def stop(self) -> None:
        self._stop.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _idle_until_work(self) -> None:
        """Wait on the streams until an event came or a sale needs a round. The duties
        (discovery, reclaim, trim) are done between two waits, without a round over every
        sale; one due within half a window is done at once rather than cutting the next
        window short, so the windows are whole and each ends with the discovery."""
        while not self._stop.is_set():
            got = await self._wait_for_events()
            if got is None or got > 0:
                return
            if await self._idle_duties():
                return

    async def _idle_duties(self) -> bool:
        """The duties due now or within half a window; True when a round must follow (a
        new sale, a sale without its group yet, entries reclaimed)."""
        now = time.monotonic()
        soon = now + self._window_ms() / 2000
        if soon >= self._discover_at:
            known = set(self._sales)
            await self._discover()
            self._discover_at = now + self.config.discover_every_s
            if not set(self._sales) <= known:
                return True  # a new sale: its group is made by a round
        if not set(self._sales) <= self._groups:
            return True  # a round tries its group again
        for sale_id in list(self._sales):
            if self._stop.is_set():
                break
            if await self._reclaim_if_due(sale_id, SaleKeys(self.namespace, sale_id), soon):
                return True
            await self._trim_if_due(sale_id, soon)
        return False

    def _window_ms(self) -> int:
        """The longest idle wait (``idle_block_s``), kept below the client's read deadline
        by ``READ_MARGIN_S`` and a fifth of it; 0 (poll) when blocking is off or the
        deadline leaves no room for a blocking read."""
        block_s = self.config.idle_block_s
        deadline = read_deadline(self.redis)
        if deadline is not None:
            block_s = min(block_s, deadline * 0.8, deadline - READ_MARGIN_S)
        return max(0, int(block_s * 1000))

    async def _wait_for_events(self) -> int | None:
        """Nothing to write: block on every active sale's stream at once until an event
        arrives or the next duty (discovery, reclaim, trim) is due, and write what
        arrives. So an idle write-behind makes a call a second or so per server, not one
        per sale every ``idle_sleep_s``, and still writes an event the moment it comes.
        One server: one XREADGROUP ... BLOCK over all the streams. A Redis Cluster
        refuses a command over several slots, so there each stream has a blocking read
        of its own, all at once (cluster_wait.py). With no stream yet, blocking off
        (``idle_block_s`` 0) or a blocking read that failed, it sleeps ``idle_sleep_s``
        and answers None: a poll round follows. Returns the entries written."""
        streams = {SaleKeys(self.namespace, s).events: s for s in self._sales if s in self._groups}
        block_ms = self._window_ms()
        if not streams or block_ms <= 0:
            await self._sleep(self.config.idle_sleep_s)
            return None
        due = min(
            [
                self._discover_at,
                *(self._reclaim_at.get(sale_id, 0.0) for sale_id in streams.values()),
                *(
                    self._trim_at.get(sale_id, 0.0)
                    for sale_id in streams.values()
                    if sale_id in self._acked_since_trim
                ),
            ]
        )
        block_ms = max(1, min(block_ms, int((due - time.monotonic()) * 1000)))
        if isinstance(self.redis, RedisCluster):
            return await self._wait_on_cluster(self.redis, streams, block_ms)
        reply = await self.redis.xreadgroup(
            PERSIST_GROUP,
            self.name,
            dict.fromkeys(streams, ">"),
            count=self.config.batch_size,
            block=block_ms,
        )
        # read entries are in hand: written even when a stop came meanwhile
        by_sale = {streams[k]: e for k, e in entries_by_stream(reply).items() if e}
        await self._handle_together(by_sale)
        for sale_id in by_sale:
            self._idle[sale_id] = 0
        return sum(len(entries) for entries in by_sale.values())

    async def _wait_on_cluster(
        self, redis: RedisCluster, streams: dict[str, str], block_ms: int
    ) -> int | None:
        """The idle wait on a cluster (cluster_wait.py); None asks for a poll round, after
        ``idle_sleep_s`` when a read failed (the old polling, until the cluster heals)."""
        wait = await wait_on_cluster(
            redis,
            self.name,
            streams,
            window_s=block_ms / 1000,
            count=max(TOGETHER_MIN_COUNT, self.config.batch_size // len(streams)),
            write=self._handle_together,
            stop=self._stop,
        )
        for sale_id in wait.slots:
            self._idle[sale_id] = 0
        if wait.failed:
            await self._sleep(self.config.idle_sleep_s)
        return None if wait.poll else wait.written

    async def step(self) -> int:
        """One round over the known sales; returns how many entries were handled."""
        now = time.monotonic()
        if now >= self._discover_at:
            await self._discover()
            self._discover_at = now + self.config.discover_every_s
        handled = 0
        ready: list[str] = []
        for sale_id in list(self._sales):
            if self._stop.is_set():
                break
            if sale_id in self._groups or await self._ensure_group(sale_id):
                ready.append(sale_id)
        if len(ready) > 1:
            return await self._step_together(ready)
        for sale_id in ready:
            if self._stop.is_set():
                break
            got = await self._sale_step(sale_id)
            self._idle[sale_id] = 0 if got else self._idle.get(sale_id, 0) + 1
            handled += got
        return handled

    async def _step_together(self, sales: list[str]) -> int:
        """One round over several sales: each read takes every sale's new entries (one
        XREADGROUP over all the streams on one server; one per stream, all at once, on a
        Redis Cluster, whose slots one command cannot span) and they are written in ONE
        transaction, so 50 busy drops cost a commit per round, not 50."""
        got = dict.fromkeys(sales, 0)
        for sale_id in sales:
            got[sale_id] += await self._reclaim_if_due(sale_id, SaleKeys(self.namespace, sale_id))
        streams = {SaleKeys(self.namespace, s).events: s for s in sales}
        count = max(TOGETHER_MIN_COUNT, self.config.batch_size // len(streams))
        for _ in range(self.config.max_rounds):
            if self._stop.is_set():
                break
            by_sale = await self._read_together(streams, count)
            await self._handle_together(by_sale)
            for sale_id, entries in by_sale.items():
                got[sale_id] += len(entries)
            if all(len(entries) < count for entries in by_sale.values()):
                break  # no stream had a full batch: no backlog left
        for sale_id in sales:
            self._idle[sale_id] = 0 if got[sale_id] else self._idle.get(sale_id, 0) + 1
            await self._trim_if_due(sale_id)
        return sum(got.values())

    async def _discover(self) -> None:
        """The active sales (engine/active.py), not every sale ever created; those closed
        and drained leave the set here, so an idle write-behind costs the same with 10
        or 10,000 finished sales."""
        if self._pinned is not None:
            return
        sales = await active_sale_ids(self.redis, self.namespace)
        now_ms = int(time.time() * 1000)
        retired: set[str] = set()
        now = time.monotonic()
        for sale_id in sales:
            if self._idle.get(sale_id, 0) < 2:  # handled something lately: not done yet
                continue
            if now < self._retire_check_at.get(sale_id, 0.0):
                continue  # an open sale is asked again every ten discoveries, not each

            async def undrained(sale_id: str = sale_id) -> bool:
                return (await stream_lag(self.redis, self.namespace, sale_id)).entries > 0

            if await retire(self.redis, self.namespace, sale_id, now_ms, undrained):
                retired.add(sale_id)
                self._idle.pop(sale_id, None)
                self._retire_check_at.pop(sale_id, None)
            else:
                self._retire_check_at[sale_id] = now + 10 * self.config.discover_every_s
        self._sales = [s for s in sales if s not in retired]

    async def _ensure_group(self, sale_id: str) -> bool:
        key = SaleKeys(self.namespace, sale_id).events
        try:
            await self.redis.xgroup_create(key, PERSIST_GROUP, id="0")
        except ResponseError as exc:
            message = str(exc)
            if "BUSYGROUP" not in message:
                if "requires the key to exist" in message:
                    return False  # no event yet
                raise
        self._groups.add(sale_id)
        return True

    async def _sale_step(self, sale_id: str) -> int:
        keys = SaleKeys(self.namespace, sale_id)
        handled = await self._reclaim_if_due(sale_id, keys)
        if self._stop.is_set():
            return handled
        entries = stream_entries(await self._read(keys))
        rounds = 0
        while entries:
            # While this batch is written, the next one is already on its way from Redis
            # (a full batch suggests a backlog). Entries read are in hand: they are
            # written even when a stop arrives meanwhile.
            rounds += 1
            ahead: asyncio.Task[Any] | None = None
            if (
                len(entries) == self.config.batch_size
                and rounds < self.config.max_rounds
                and not self._stop.is_set()
            ):
                ahead = asyncio.create_task(self._read(keys))
            try:
                await self._handle(sale_id, keys, entries, reclaimed=False)
            finally:
                next_reply = await ahead if ahead is not None else None
            handled += len(entries)
            entries = stream_entries(next_reply)
        await self._trim_if_due(sale_id)
        return handled

    async def _read_together(self, streams: dict[str, str], count: int) -> dict[str, list[Entry]]:
        """{sale: its new entries} of the ``streams`` (events key -> sale), empty ones left out."""
        if isinstance(self.redis, RedisCluster):
            redis = self.redis
            replies = await asyncio.gather(
                *(read_new_on_cluster(redis, self.name, key, count=count) for key in streams),
                return_exceptions=True,
            )
            found: dict[str, list[Entry]] = {}
            failure: BaseException | None = None
            for key, outcome in zip(streams, replies, strict=True):
                if isinstance(outcome, BaseException):
                    failure = failure or outcome
                else:
                    found[streams[key]] = outcome
            if failure is not None:
                # one node failing (gone, frozen) must not cost the others' entries in
                # hand a reclaim's wait: they are written, then the failure is raised
                await self._handle_together({s: e for s, e in found.items() if e})
                raise failure
        else:
            reply = await self.redis.xreadgroup(
                PERSIST_GROUP, self.name, dict.fromkeys(streams, ">"), count=count
            )
            found = {streams[k]: e for k, e in entries_by_stream(reply).items()}
        return {sale_id: entries for sale_id, entries in found.items() if entries}

    async def _reclaim_if_due(self, sale_id: str, keys: SaleKeys, soon: float = 0.0) -> int:
        """``soon``: due by then counts as due now (the idle wait's duties)."""
        now = time.monotonic()
        if max(now, soon) < self._reclaim_at.get(sale_id, 0.0):
            return 0
        # an entry is claimable only once min_idle_ms old, so a quiet sale is looked
        # at every half of that: its crash repair waits at most that much longer
        every = self.config.reclaim_every_s
        if self._idle.get(sale_id, 0) > 0:
            every = max(every, self.config.min_idle_ms / 2000)
        self._reclaim_at[sale_id] = now + every
        return await self._reclaim(sale_id, keys)

    async def _trim_if_due(self, sale_id: str, soon: float = 0.0) -> None:
        """What this consumer acknowledged it trims; a quiet sale has nothing new to trim.
        ``soon``: due by then counts as due now (the idle wait's duties)."""
        now = time.monotonic()
        if sale_id in self._acked_since_trim and max(now, soon) >= self._trim_at.get(sale_id, 0.0):
            self._trim_at[sale_id] = now + self.config.trim_every_s
            self._acked_since_trim.discard(sale_id)
            await self.trim(sale_id)

    async def _read(self, keys: SaleKeys) -> Any:
        return await self.redis.xreadgroup(
            PERSIST_GROUP, self.name, {keys.events: ">"}, count=self.config.batch_size
        )

    # -- reclaim (reclaim.py) ----------------------------------------------------------

    async def _reclaim(self, sale_id: str, keys: SaleKeys) -> int:
        """Take over entries dead consumers left pending (reclaim.py) and write them."""
        claimed, rest = await self._reclaimer.claim(sale_id, keys)
        if rest:
            await self._handle(sale_id, keys, rest, reclaimed=True)
        return claimed

    # -- writing a batch ---------------------------------------------------------------

    async def _handle_together(self, by_sale: dict[str, list[Entry]]) -> None:
        """Several sales' new entries in one transaction, then one pipeline of XACKs.
        Anything unusual (a poison entry, a row PostgreSQL refuses, PostgreSQL away, the
        fault tests' broken mode) and each sale's entries go the one-sale way instead,
        with its retries and per-entry isolation; the failed transaction wrote nothing."""
        events: list[Event] = []
        try:
            for slot, entries in by_sale.items():  # a sale, or one bucket of a bucketed sale
                sale_id = sale_of_slot(slot)
                events += [decode(sale_id, entry_id, fields) for entry_id, fields in entries]
        except PoisonEntry:
            events = []
        if events and len(by_sale) > 1 and not self._ack_before_commit:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await apply_events(conn, events)
            except (*REFUSED, *TRANSIENT_PG) as exc:
                log.info("writing %d sales together failed (%r); one by one", len(by_sale), exc)
            else:
                pipe = self.redis.pipeline(transaction=False)
                for sale_id, entries in by_sale.items():
                    keys = SaleKeys(self.namespace, sale_id)
                    pipe.xack(keys.events, PERSIST_GROUP, *[entry_id for entry_id, _ in entries])
                    self._acked_since_trim.add(sale_id)
                await pipe.execute()
                self.stats.batches += 1
                self.stats.entries += len(events)
                return
        for sale_id, entries in by_sale.items():
            await self._handle(sale_id, SaleKeys(self.namespace, sale_id), entries, reclaimed=False)

    async def _handle(
        self, sale_id: str, keys: SaleKeys, entries: list[Entry], *, reclaimed: bool
    ) -> None:
        events: list[Event] = []
        failed: dict[str, str] = {}
        for entry_id, fields in entries:
            try:
                events.append(decode(sale_of_slot(sale_id), entry_id, fields))
            except PoisonEntry as exc:
                failed[entry_id] = f"malformed event: {exc}"
        if self._ack_before_commit:  # the broken variant the kill test must catch
            await self.redis.xack(keys.events, PERSIST_GROUP, *[e.stream_id for e in events])
        written = await self._write_with_retry(events, failed)
        if written is None:
            return  # stopping while PostgreSQL is down: the entries stay pending
        ok = [e.stream_id for e in written]
        pipe = self.redis.pipeline(transaction=False)
        if ok and not self._ack_before_commit:
            pipe.xack(keys.events, PERSIST_GROUP, *ok)
        if reclaimed and ok:
            pipe.hdel(keys.persist_failures, *[f for i in ok for f in (i, f"{i}#n")])
        if failed:
            # the last reason, and how many deliveries failed (crashes count none)
            pipe.hset(keys.persist_failures, mapping=failed)  # type: ignore[arg-type]
            for entry_id in failed:
                pipe.hincrby(keys.persist_failures, f"{entry_id}#n", 1)
            self.stats.failed_deliveries += len(failed)
            for entry_id, why in failed.items():
                log.warning("sale %s: entry %s not persisted: %s", sale_id, entry_id, why)
        await pipe.execute()
        self._acked_since_trim.add(sale_id)
        self.stats.batches += 1
        self.stats.entries += len(ok)

    async def _write_with_retry(
        self, events: list[Event], failed: dict[str, str]
    ) -> list[Event] | None:
        """Commit the events; None when asked to stop while PostgreSQL is unreachable."""
        if not events:
            return []
        backoff = self.config.backoff_initial_s
        while True:
            try:
                return await self._write(events, failed)
            except TRANSIENT_PG as exc:
                self.stats.pg_retries += 1
                if self._stop.is_set():
                    log.warning("stopping with PostgreSQL unavailable; batch left pending")
                    return None
                log.warning(
                    "postgresql unavailable (%s); retrying in %.2fs", type(exc).__name__, backoff
                )
                await self._sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.config.backoff_max_s)

    async def _write(self, events: list[Event], failed: dict[str, str]) -> list[Event]:
        async with self.pool.acquire() as conn:
            try:
                return await self._write_on(conn, events, failed)
            except asyncpg.InternalClientError:
                conn.terminate()  # its protocol is stuck: the pool opens a new one
                raise

    async def _write_on(
        self, conn: asyncpg.Connection, events: list[Event], failed: dict[str, str]
    ) -> list[Event]:
        # A refusal is often transient with several consumers on one stream: another
        # consumer holds the earlier entries (the sale's creation, the release of a
        # serial) and has not committed yet. Give it a moment before isolating.
        # An order whose sale row is not there yet (its creation is in another
        # consumer's batch, at the very start of a stream) waits up to ~3 s.
        attempt = 0
        while True:
            try:
                async with conn.transaction():
                    await apply_events(conn, events)
                return events
            except REFUSED as exc:
                waiting_for_sale = isinstance(exc, asyncpg.ForeignKeyViolationError)
                limit = 8 if waiting_for_sale else self.config.refused_retries
                if attempt >= limit:
                    break
                await asyncio.sleep(min(0.05 * 2**attempt, 0.5))
                attempt += 1
        # Some row is refused: find which with one savepoint per entry. Only that
        # entry is held (and dead-lettered after max_deliveries, with its reason).
        ok: list[Event] = []
        async with conn.transaction():
            for event in events:
                try:
                    async with conn.transaction():
                        await apply_events(conn, [event])
                    ok.append(event)
                except REFUSED as exc:
                    failed[event.stream_id] = f"{type(exc).__name__}: {exc}"
                    await self._repair_sale_event(conn, event, exc)
        return ok

    async def _repair_sale_event(
        self, conn: asyncpg.Connection, event: Event, exc: Exception
    ) -> None:
        """A sale event PostgreSQL refuses for its text (a NUL, say) is dead-lettered as it
        is, but its sale's orders must not wait on it (they need the sale's row): the
        event is also written with that text repaired (NUL -> U+FFFD, the entry's stream
        id kept), so the sale exists and the rest of its stream flows."""
        if not isinstance(event, SaleEvent) or not isinstance(exc, asyncpg.DataError):
            return
        repaired = event.repaired()
        if repaired is None:
            return
        try:
            async with conn.transaction():
                await apply_events(conn, [repaired])
        except REFUSED as again:
            log.error("sale %s: event %s refused even repaired: %s", event.sale_id,
                      event.stream_id, again)  # fmt: skip
            return
        log.error(
            "sale %s: event %s refused by PostgreSQL (%s); written with its text repaired, "
            "the original goes to the dead letters",
            event.sale_id,
            event.stream_id,
            exc,
        )

    # -- trimming and draining ---------------------------------------------------------

    async def trim(self, sale_id: str) -> int:
        """Delete acknowledged entries: everything below the oldest one the group needs."""
        key = SaleKeys(self.namespace, sale_id).events
        minid = await _needed_from(self.redis, key)
        if minid is None:
            return 0
        removed = int(await self.redis.xtrim(key, minid=minid, approximate=False))
        self.stats.trimmed += removed
        await self._forget_dead_consumers(key)
        return removed

    async def _forget_dead_consumers(self, key: str) -> None:
        """Drop consumers that hold nothing and were not seen for a long time (crashed ones)."""
        for consumer in await self.redis.xinfo_consumers(key, PERSIST_GROUP):
            name = text(consumer["name"])
            if (
                name != self.name
                and int(consumer["pending"]) == 0
                and int(consumer["idle"]) > self.config.forget_consumer_after_ms
            ):
                await self.redis.xgroup_delconsumer(key, PERSIST_GROUP, name)

    async def drain(self, *, timeout_s: float = 60.0) -> None:
        """Consume until every known sale's stream is fully acknowledged (tests, bench)."""
        deadline = time.monotonic() + timeout_s
        while True:
            handled = await self.step()
            if handled == 0:
                lags = [await stream_lag(self.redis, self.namespace, s) for s in self._sales]
                if all(lag.entries == 0 for lag in lags):
                    return
                await asyncio.sleep(self.config.idle_sleep_s)
            if time.monotonic() > deadline:
                raise TimeoutError("write-behind did not drain in time")


async def apply_events(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Write events in one transaction (the caller's): sales first, then orders, then history."""
    sale_events = [e for e in events if isinstance(e, SaleEvent)]
    for ev in sale_events:
        await conn.execute(
            q("insert_sale_change"),
            ev.sale_id,
            ev.version,
            ev.type,
            ev.actor,
            ev.changes_json(),
            ev.at_ms,
            ev.stream_id,
        )
    for sale_id in {ev.sale_id for ev in sale_events}:
        await conn.execute(q("refresh_sale"), sale_id, FAR_FUTURE_MS)
    order_events = [e for e in events if isinstance(e, OrderEvent)]
    if not order_events:
        return
    latest: dict[str, OrderEvent] = {}
    for oe in order_events:
        seen = latest.get(oe.order_id)
        if seen is None or oe.version > seen.version:
            latest[oe.order_id] = oe
    rows = sorted(
        latest.values(), key=lambda e: e.status in statuses.HOLDS_SERIAL
    )  # stable: released first
    await conn.execute(
        q("upsert_orders"),
        [e.order_id for e in rows],
        [e.sale_id for e in rows],
        [e.user_id for e in rows],
        [e.serial for e in rows],
        [e.serial_kind for e in rows],
        [e.status for e in rows],
        [e.version for e in rows],
        [e.created_ms for e in rows],
        [e.expires_ms for e in rows],
        [e.updated_ms for e in rows],
        [e.price_cents for e in rows],
        [e.currency for e in rows],
        [e.payment_id for e in rows],
        [e.reason for e in rows],
        [e.draw for e in rows],
        [e.ip for e in rows],
    )
    history: dict[tuple[str, int], OrderEvent] = {(e.order_id, e.version): e for e in order_events}
    hist = list(history.values())
    await conn.execute(
        q("insert_order_events"),
        [e.order_id for e in hist],
        [e.version for e in hist],
        [e.type for e in hist],
        [e.status for e in hist],
        [e.at_ms for e in hist],
        [e.stream_id for e in hist],
    )


async def _needed_from(redis: AnyRedis, key: str) -> str | None:
    """Smallest stream id the group still needs; None when the group does not exist.

    Read the last delivered id BEFORE the pending list: an entry delivered in
    between has a greater id than the one read, so it is never trimmed.
    """
    info = await group_info(redis, key)
    if info is None:
        return None
    last = text(info["last-delivered-id"])
    summary = await redis.xpending(key, PERSIST_GROUP)
    candidates = [next_id(last)]
    if summary and int(summary["pending"]) > 0 and summary.get("min"):
        candidates.append(text(summary["min"]))
    return min(candidates, key=id_key)
