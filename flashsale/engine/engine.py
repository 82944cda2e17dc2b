"""The engine: a typed async API over the Lua scripts, one round trip per transition.

Over 500 lines for a reason: every script call of the project is a method of this one
class (as BullMQ keeps every command in one backend class), so the whole Redis contract
reads in one place; the keys, codecs, refusal codes and transport live in modules of
their own beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from msgspec import UNSET, structs
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.crashpoints import crash_point
from flashsale.engine import (
    active,
    buckets,
    errors,
    housekeeping,
    permutation,
    randomhex,
    scripts,
)
from flashsale.engine.clock import now_ms as wall_clock_ms
from flashsale.engine.cluster_client import WaitingRedisCluster
from flashsale.engine.codec import text
from flashsale.engine.keys import (
    LIVE_SUFFIX,
    MAX_BUCKETS,
    SaleKeys,
    active_sales,
    bucket_slot,
    creations,
    history_field,
    home_bucket,
    live_field,
    order_ids_in,
    request_window,
    sale_id_of_order,
    sales_registry,
    slot_of_order,
)
from flashsale.engine.models import (
    FAR_FUTURE_MS,
    Order,
    Purchase,
    Sale,
    SaleCreate,
    SaleUpdate,
    SerialsSpec,
    datetime_to_ms,
    ms_to_datetime,
    order_from_record,
    order_from_reply,
    sale_from_meta,
)
from flashsale.engine.resp import Arg, encode_args
from flashsale.engine.router import ClusterRouter, Router, SingleRouter
from flashsale.engine.scripts import LuaScript
from flashsale.engine.transport import ReplyLost, TransportOptions
from flashsale.errors import ValidationFailed

# Error replies that mean the script wrote nothing: NOREPLICAS (durable mode's
# min-replicas-to-write), MISCONF (the AOF cannot be written) and OOM refuse a script
# at its first write, never after one.
_TRANSIENT = (
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "READONLY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
    "MISCONF",
    "OOM",
)
LIST_CHUNK = 20_000  # serials per script call when loading a long list (keeps Redis responsive)

ProgressCallback = Callable[[int, int], None]


def new_order_id(sale_id: str) -> str:
    """A fresh order id, ``<sale_id>.<20 hex>`` (80 random bits: ids are not guessable and
    do not collide; the sale, and so its slot, is in the id)."""
    return f"{sale_id}.{randomhex.token_hex(LIVE_SUFFIX // 2)}"


def legacy_order_id(sale_id: str, user_id: str, n: int) -> str:
    """The id of a buyer's n-th order before packed records (ids were derived, not drawn)."""
    digest = hashlib.sha1(f"{sale_id}\n{user_id}\n{n}".encode()).hexdigest()
    return f"{sale_id}.{digest[:20]}"


def _segment_args(spec: SerialsSpec) -> list[Arg]:
    if spec.range is not None:
        return ["r", spec.range[0], spec.range[1]]
    assert spec.list is not None
    return ["l", *spec.list]


def _url_of(redis: Redis | RedisCluster) -> str:
    """The URL of the server a redis-py client talks to, for the hot-path connections."""
    if isinstance(redis, RedisCluster):
        node = next(iter(redis.nodes_manager.startup_nodes.values()))
        kw = {**redis.get_connection_kwargs(), "host": node.host, "port": node.port}
    else:
        kw = redis.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}"
    auth = ""
    if kw.get("password"):
        auth = f"{quote(str(kw.get('username') or 'default'))}:{quote(str(kw['password']))}@"
    return f"redis://{auth}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def purchase_argv(args: list[Arg]) -> list[Arg]:
    """purchase-10's ARGV from the engine's purchase arguments (the order place-8 takes):
    the fingerprint and the key's TTL only with an Idempotency-Key, ip_mode only when it
    is not empty or they follow it; each value sent costs Redis a share of the call."""
    sale_id, user_id, ip, now, has_idem, fingerprint, ttl, order_id, deadline, ip_mode = args
    argv = [sale_id, user_id, ip, now, order_id, deadline]
    if has_idem:
        return [*argv, ip_mode, fingerprint, ttl]
    return [*argv, ip_mode] if ip_mode else argv


# Every script the engine runs (lua/<name>-<n>.lua): the whole Redis contract.
SCRIPTS = (
    "create_sale",
    "tune",
    "purchase",
    "cancel",
    "expire",
    "confirm_payment",
    "request_refund",
    "refund",
    "reject_refund",
    "refund_delivered",
    "ip_rate",
    "upgrade_orders",
    "start_delivery",
    "confirm_delivery",
    "fail_delivery",
    "complete",
    "take",
    "place",
    "give_back",
    "fence",
    "sync_settings",
    "begin_create",
    "ip_hold",
    "ip_unhold",
    "ip_check",
    "load_serials",
    "abandon_create",
    "drop_orphan",
)
REQUEST_WINDOW_TTL_S = 2  # a one-second window, kept a little longer than its second


class Engine:
    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        namespace: str = "fs",
        idempotency_ttl_s: int = 86_400,
        clock: Callable[[], int] = wall_clock_ms,
        wait_replicas: int = 0,
        url: str | None = None,
        transport: TransportOptions | None = None,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.idempotency_ttl_s = idempotency_ttl_s
        self.clock = clock
        # redis-py serves the cold paths; script calls take the auto-pipelined hot path
        # (deadlines, bounded queue, durability check: engine/transport.py)
        options = transport or TransportOptions(wait_replicas=wait_replicas)
        self.timeout_ms = options.timeout_ms  # a script call's deadline
        self._router: Router
        if isinstance(redis, RedisCluster):
            self._router = ClusterRouter(url or _url_of(redis), options)
        else:
            self._router = SingleRouter(url or _url_of(redis), options)
        self._sale_keys: dict[str, SaleKeys] = {}
        self._buckets: dict[str, int] = {}  # B of each sale seen (fixed at creation)
        self._buckets_reads: dict[str, asyncio.Future[list[Any]]] = {}
        # per bucketed sale: is its per-IP limit on? (unknown: on; learnt from ip_hold-3's
        # and purchase-10's answers, which check it, so a wrong belief costs a round trip)
        self._ip_limited: dict[str, bool] = {}
        self._key_blocks: dict[tuple[str, tuple[Arg, ...]], bytes] = {}
        self._scripts = {name: scripts.load(name) for name in SCRIPTS}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int = 32,
        cluster: bool = False,
        socket_timeout_s: float | None = None,
        **kwargs: Any,
    ) -> Engine:
        """An engine on one Redis server, or on a Redis Cluster (any node's URL);
        ``socket_timeout_s`` bounds each call of the redis-py client (the cold paths)."""
        timeouts = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s}
        if cluster:
            client = WaitingRedisCluster.from_url(url, max_connections=max_connections, **timeouts)
            return cls(client, url=url, **kwargs)
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, **timeouts
        )
        return cls(Redis(connection_pool=pool), url=url, **kwargs)

    async def aclose(self) -> None:
        await self._router.aclose()
        await self.redis.aclose()

    def keys(self, sale_id: str) -> SaleKeys:
        keys = self._sale_keys.get(sale_id)
        if keys is None:
            if len(self._sale_keys) > 10_000:
                self._sale_keys.clear()
            keys = self._sale_keys[sale_id] = SaleKeys(self.namespace, sale_id)
        return keys

    def _command(
        self, script: LuaScript, keys: Sequence[Arg], args: list[Arg], *, cache: bool = True
    ) -> bytes:
        """EVALSHA encoded for the wire; the script-and-keys part is encoded once per sale
        (``cache=False`` for keys that change at every call, which would only churn it)."""
        if len(keys) != script.num_keys:
            raise ValueError(f"{script.name} takes {script.num_keys} keys, got {len(keys)}")
        cache_key = (script.name, tuple(keys))
        block = self._key_blocks.get(cache_key) if cache else None
        if block is None:
            block = encode_args(["EVALSHA", script.sha, script.num_keys, *keys])
            if cache:
                if len(self._key_blocks) > 20_000:
                    self._key_blocks.clear()
                self._key_blocks[cache_key] = block
        header: bytes = b"*%d\r\n" % (3 + len(keys) + len(args))
        command: bytes = header + block + encode_args(args)
        return command

    async def _call(
        self, name: str, keys: Sequence[Arg], args: list[Arg], *, cache: bool = True
    ) -> Any:
        """Run one script on the auto-pipelined, cluster-routed path. A call written whose
        reply did not come becomes ``OutcomeUnknown``; one never written (CallNotSent, a
        ConnectionError), and Redis errors that mean the script did not run, become
        ``EngineUnavailable`` (docs/design.md, "Answers that are the truth")."""
        script: LuaScript = self._scripts[name]
        try:
            command = self._command(script, keys, args, cache=cache)
            reply = await self._router.call(script, str(keys[0]), command)
        except ReplyLost as exc:
            raise errors.OutcomeUnknown(f"Redis did not answer: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise errors.EngineUnavailable(f"Redis did not answer: {exc}") from exc
        except ResponseError as exc:
            # a server that is loading its data, busy, or not writable right now
            # did not run the script: the caller may retry (same idempotency key)
            if str(exc).startswith(_TRANSIENT):
                raise errors.EngineUnavailable(f"Redis is not ready: {exc}") from exc
            raise
        return reply

    async def _transition(self, name: str, keys: Sequence[Arg], args: list[Arg]) -> Any:
        """An order's transition (ARGV[1] its id); its sale is active again once it moved."""
        reply = await self._call(name, keys, args)
        if int(reply[0]) > 0:
            await self.touch(slot_of_order(str(args[0])))
        return reply

    # -- sales -------------------------------------------------------------------------

    async def create_sale(
        self,
        spec: SaleCreate,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> Sale:
        now = self.clock()
        sale_id = spec.sale_id or f"s-{secrets.token_hex(6)}"
        key = permutation.new_key()
        start_ms = datetime_to_ms(spec.start_at) if spec.start_at else now
        end_ms = datetime_to_ms(spec.end_at) if spec.end_at else FAR_FUTURE_MS
        if end_ms <= start_ms:
            raise ValidationFailed("end_at must be after start_at")
        chunks = self._chunks(spec.serials)
        status = "open" if len(chunks) == 1 else "loading"
        settings: list[Arg] = [
            sale_id,
            spec.name,
            status,
            start_ms,
            end_ms,
            spec.per_user_limit,
            spec.per_ip_limit or 0,
            spec.payment_timeout_s * 1000,
            spec.price_cents,
            spec.currency,
            spec.assignment,
            key,
            permutation.commitment(key),
            now,
            spec.merchant_id,
            spec.after_sales_window_s * 1000,
            spec.buckets,
        ]
        # a bucketed drop's list: each bucket gets only the items its window draws, in
        # the list's segments (buckets.list_shares); anything else, the same in each
        shares = [[_segment_args(chunks[0])]] * spec.buckets
        if spec.buckets > 1 and spec.serials.list is not None:
            # ~0.5 s of CPU per 100,000 random serials: off the event loop
            shares = await asyncio.to_thread(
                buckets.list_shares,
                spec.serials.list,
                spec.buckets,
                LIST_CHUNK,
                spec.assignment,
                key,
            )
        token: Arg = ""
        attempt = ""
        try:
            if spec.buckets > 1:
                token = drawn = await self._begin_create(sale_id)
                attempt = f"{sale_id} {drawn}"  # housekeeping's index of possible orphans
                await self.redis.zadd(creations(self.namespace), {attempt: wall_clock_ms()})
                # buckets b > 0 first: once bucket 0 (the sale) exists, every buyer's home
                # does; a crash before it leaves orphans the next attempt replaces
                for b in range(1, spec.buckets):
                    slot = bucket_slot(sale_id, b)
                    await self._create_slot(slot, [*settings, b, token, *shares[b][0]])
                    await self._load_shares(slot, token, shares[b][1:])
                    crash_point(f"create.after_bucket_{b}")
            await self._create_slot(sale_id, [*settings, 0, token, *shares[0][0]])
            await self._load_shares(sale_id, token, shares[0][1:])
        except errors.SaleExists:
            await self._registered(sale_id)  # a creation that stopped before it registered
            raise
        crash_point("create.after_bucket_0")
        await self._registered(sale_id)
        if attempt:  # finished: this attempt left no orphan (an older one has its own entry)
            await self.redis.zrem(creations(self.namespace), attempt)
        done = chunks[0].size if spec.buckets == 1 else spec.serials.size
        if on_progress:
            on_progress(done, spec.serials.size)
        for chunk in chunks[1:] if spec.buckets == 1 else []:
            await self.tune(sale_id, SaleUpdate(add_serials=chunk), actor="create", loading=True)
            done += chunk.size
            if on_progress:
                on_progress(done, spec.serials.size)
        if status == "loading":
            await self.tune(sale_id, SaleUpdate(status="open"), actor="create", loading=True)
        return await self.get_sale(sale_id)

    async def _begin_create(self, sale_id: str) -> int:
        """The creation token of a bucketed drop (begin_create-2), or ``SaleExists``."""
        k = self.keys(sale_id)
        reply = await self._call("begin_create", [k.meta, k.creation], [])
        if int(reply[0]) < 0:
            raise errors.refusal(reply)
        return int(reply[1])

    async def _create_slot(self, slot: str, args: list[Arg]) -> None:
        """create_sale-6 on one slot: the sale itself, or one bucket of a bucketed drop."""
        k = self.keys(slot)
        reply = await self._call(
            "create_sale", [k.meta, k.segments, k.items, k.itemset, k.events, k.creation], args
        )
        if int(reply[0]) < 0:
            raise errors.refusal(reply)

    async def _load_shares(self, slot: str, token: Arg, specs: list[list[Arg]]) -> None:
        """A bucketed drop's list past its first segment: this bucket's share of each
        further segment (load_serials-5), one script call each."""
        k = self.keys(slot)
        for spec in specs:
            reply = await self._call(
                "load_serials", [k.meta, k.segments, k.items, k.itemset, k.creation], [token, *spec]
            )
            if int(reply[0]) < 0:
                raise errors.refusal(reply)

    async def _registered(self, sale_id: str) -> None:
        """The sale in the registry and its slots active (idempotent: a creation that
        stopped after its bucket 0 is completed by the retry that finds it exists)."""
        if not await self.redis.exists(self.keys(sale_id).meta):
            return  # refused before it existed (a newer creation of the id won)
        await self.redis.sadd(sales_registry(self.namespace), sale_id)
        for slot in await self.slots(sale_id):
            await self.touch(slot)

    @staticmethod
    def _chunks(serials: SerialsSpec) -> list[SerialsSpec]:
        if serials.list is None or len(serials.list) <= LIST_CHUNK:
            return [serials]
        items = serials.list
        return [
            SerialsSpec(list=items[i : i + LIST_CHUNK]) for i in range(0, len(items), LIST_CHUNK)
        ]

    async def get_sale(self, sale_id: str) -> Sale:
        raw = await self.redis.hgetall(self.keys(sale_id).meta)
        if not raw:
            raise errors.SaleNotFound()
        # "hot2" and "cur2" ("hot", "cur" before) are packed copies for the purchase
        # script (lua/includes/hot.lua)
        meta = {
            text(k): text(v) for k, v in raw.items() if k not in (b"hot", b"cur", b"hot2", b"cur2")
        }
        count = self._know_buckets(sale_id, int(meta.get("buckets") or 1))
        pending = False
        if count > 1:  # one sale: the counters summed over its buckets
            rows = [
                await self.redis.hmget(self.keys(slot).meta, [*buckets.COUNTERS, "version"])
                for slot in buckets.slots(sale_id, count)
            ]
            meta.update(buckets.summed([row[:-1] for row in rows]))
            # a bucket not at bucket 0's version missed a tune (it stopped midway)
            pending = any(row[-1] != rows[0][-1] for row in rows)
        sale = sale_from_meta(meta, self.clock())
        return structs.replace(sale, tune_pending=True) if pending else sale

    async def buckets_of(self, sale_id: str) -> int:
        """B of a sale (1 when unbucketed, or when there is no such sale yet); read once per
        process and sale (B never changes), so a purchase pays nothing for it. Callers
        that arrive while it is read wait for that one read (a burst's first second)."""
        known = self._buckets.get(sale_id)
        if known is not None:
            return known
        reading = self._buckets_reads.get(sale_id)
        if reading is None:
            reading = self._buckets_reads[sale_id] = asyncio.ensure_future(
                self.redis.hmget(self.keys(sale_id).meta, ["buckets", "total"])
            )
        try:  # within a script call's deadline, as the call it comes before
            count, total = await asyncio.wait_for(asyncio.shield(reading), self.timeout_ms / 1000)
        except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise errors.EngineUnavailable(f"Redis did not answer: {exc!r}") from exc
        finally:
            if reading.done():
                self._buckets_reads.pop(sale_id, None)
        if total is None:
            return 1  # no such sale (yet): the purchase answers sale_not_found
        return self._know_buckets(sale_id, int(count or 1))

    def _know_buckets(self, sale_id: str, count: int) -> int:
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        self._buckets[sale_id] = count
        return count

    async def slots(self, sale_id: str) -> list[str]:
        """The slots holding a sale's orders: the sale's own, and its other buckets'."""
        return buckets.slots(sale_id, await self.buckets_of(sale_id))

    async def touch(self, sale_id: str) -> None:
        """The sale is active again (engine/active.py): after any transition but a purchase
        (a purchase needs an open sale, which is never retired)."""
        await self.redis.sadd(active_sales(self.namespace), sale_id)

    async def active_sale_ids(self) -> list[str]:
        """The sales ``persist`` and ``timers`` work on (engine/active.py)."""
        return await active.active_sale_ids(self.redis, self.namespace)

    async def sale_ids(self) -> list[str]:
        members = await self.redis.smembers(sales_registry(self.namespace))
        return sorted(text(m) for m in members)

    async def tune(
        self, sale_id: str, update: SaleUpdate, *, actor: str = "ops", loading: bool = False
    ) -> Sale:
        """Change a live sale; refused (``SaleClosed``) once it is closed or past its end,
        except for ``loading``: the creation adding its own chunks."""
        k = self.keys(sale_id)

        def opt(value: Any, scale: int = 1) -> Arg:
            if value is UNSET:
                return ""  # unchanged
            if value is None:
                return 0  # only per_ip_limit may be None: the limit is off
            return int(value) * scale

        status = "" if update.status is UNSET else str(update.status)
        end_ms: Arg = ""
        if isinstance(update.end_at, datetime):
            end_ms = datetime_to_ms(update.end_at)
        add: list[Arg] = []
        rest: list[SerialsSpec] = []
        if isinstance(update.add_serials, SerialsSpec):
            # a long list goes in chunks, like creation's: no script holds Redis for long
            first, *rest = self._chunks(update.add_serials)
            if rest:
                await self._refuse_known_items(k, update.add_serials)
            add = _segment_args(first)
        change: list[Arg] = [
            self.clock(),
            status,
            end_ms,
            opt(update.per_user_limit),
            opt(update.per_ip_limit),
            opt(update.payment_timeout_s, 1000),
            actor,
            "1" if loading else "",
        ]
        followers = (await self.slots(sale_id))[1:]
        if followers and isinstance(update.add_serials, SerialsSpec):
            # a bucketed list keeps each bucket's share in that bucket only (create_sale
            # above): tune-5 checks bucket 0's, the others' are checked here (a bucket
            # b > 0 never gains a serial after its creation, so nothing races this)
            for slot in followers:
                await self._refuse_known_items(self.keys(slot), update.add_serials)
        # a bucketed drop's tune is keyed by its content: retried, it is a no-op where it
        # landed and brings the other buckets level (buckets.tune_key)
        key = buckets.tune_key(change[1:6], add) if followers else ""
        reply = await self._call(
            "tune", [k.meta, k.segments, k.items, k.itemset, k.events], [*change, key, *add]
        )
        if followers and int(reply[0]) in (1, errors.Reply.SALE_CLOSED):
            # bucket 0 checked the change, wrote it and the sale's event (added serials
            # extend its window alone); the other buckets take its settings as they are
            # now. Closed already (a close that stopped midway): they still catch up.
            await self._sync_buckets(k, followers)
        if int(reply[0]) < 0:
            raise errors.refusal(reply)
        for chunk in rest:
            await self.tune(sale_id, SaleUpdate(add_serials=chunk), actor=actor, loading=loading)
        await self.touch(sale_id)
        return await self.get_sale(sale_id)

    async def level_buckets(self, sale_id: str) -> int:
        """Bring the buckets a stopped tune left behind to bucket 0's settings (the timers
        run it each tick on every active bucketed drop): reads each bucket's ``version``
        and, only when one differs from bucket 0's, runs ``sync_settings-1`` on the
        followers. Answers how many buckets lagged (0: level, nothing written)."""
        count = await self.buckets_of(sale_id)
        if count <= 1:
            return 0
        slots = buckets.slots(sale_id, count)
        # one read per bucket, all at once (on a cluster, each bucket's node answers its own)
        versions = await asyncio.gather(
            *(self.redis.hget(self.keys(slot).meta, "version") for slot in slots)
        )
        if versions[0] is None:
            return 0  # no such sale (deleted, or an orphan's leftovers)
        # a bucket without meta lost its keys (a shard restarted empty): nothing to level
        # there, recover and the audit name it
        present = [(slot, v) for slot, v in zip(slots[1:], versions[1:], strict=True) if v]
        behind = sum(v != versions[0] for _, v in present)
        if behind:
            await self._sync_buckets(self.keys(sale_id), [slot for slot, _ in present])
        return behind

    async def drop_finished_ip_holds(self, *, budget: int = 1000) -> int:
        """Housekeeping: the IP holds of finished sales' retired slots, at most ``budget``
        fields per call (engine/housekeeping.py); answers how many were deleted."""
        return await housekeeping.drop_ip_holds(
            self.redis, self.namespace, self.clock(), budget=budget
        )

    async def drop_orphan_buckets(
        self, *, older_than_ms: int = housekeeping.ORPHAN_GRACE_MS, attempts: int = 4
    ) -> int:
        """Housekeeping: the buckets left by creations of bucketed drops that stopped midway
        and began over ``older_than_ms`` ago (at most ``attempts`` of them per call, each
        up to 15 one-slot calls); answers how many buckets were deleted. Per attempt:
        ``abandon_create-2`` on bucket 0's slot says which tokens are dead (fencing the
        attempt if it is still the last), ``drop_orphan-6`` deletes each bucket b > 0
        whose token is dead, atomically in its slot."""
        index = creations(self.namespace)
        due = await self.redis.zrangebyscore(
            index, "-inf", wall_clock_ms() - older_than_ms, start=0, num=attempts
        )
        dropped = 0
        for member in map(text, due):
            sale_id, _, token = member.partition(" ")
            k = self.keys(sale_id)
            _, limit, first = await self._call("abandon_create", [k.meta, k.creation], [token])
            for b in range(max(1, int(first)), MAX_BUCKETS):
                o = self.keys(bucket_slot(sale_id, b))
                keys = [o.meta, o.segments, o.items, o.itemset, o.events, o.creation]
                args: list[Arg] = [int(limit), housekeeping.TOMBSTONE_MS]
                dropped += int((await self._call("drop_orphan", keys, args, cache=False))[0])
            await self.redis.zrem(index, member)
        return dropped

    async def _sync_buckets(self, k: SaleKeys, followers: list[str]) -> None:
        """Bring buckets b > 0 to bucket 0's settings (sync_settings-1), one by one; a
        failure midway leaves the sale reading ``tune_pending`` until a later tune, or the
        timers' ``level_buckets``, completes it."""
        values = await self.redis.hmget(k.meta, ["version", *buckets.SYNCED])
        if values[0] is None:
            raise errors.SaleNotFound()
        pairs: list[Arg] = [
            a for f, v in zip(buckets.SYNCED, values[1:], strict=True) for a in (f, text(v or b""))
        ]
        crash_point("tune.after_bucket_0")
        for b, slot in enumerate(followers, start=1):
            reply = await self._call("sync_settings", [self.keys(slot).meta], [values[0], *pairs])
            if int(reply[0]) < 0:
                raise errors.refusal(reply)
            crash_point(f"tune.after_bucket_{b}")

    async def _refuse_known_items(self, k: SaleKeys, serials: SerialsSpec) -> None:
        """Refuse a chunked list up front when the sale has one of its serials already, so
        that no chunk is added before a later one would be refused."""
        items = serials.list or []
        for start in range(0, len(items), LIST_CHUNK):
            part = items[start : start + LIST_CHUNK]
            seen = await self.redis.smismember(k.itemset, part)
            for item, known in zip(part, seen, strict=True):
                if known:
                    raise errors.SerialsRefused(f"serial already in the sale: {item}")

    # -- orders ------------------------------------------------------------------------

    async def purchase(
        self,
        sale_id: str,
        user_id: str,
        *,
        ip: str | None = None,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> Purchase:
        count = self._buckets.get(sale_id) or await self.buckets_of(sale_id)
        home = home_bucket(user_id, count)
        k = self.keys(bucket_slot(sale_id, home))  # the sale's own keys when unbucketed
        idem_key = k.idempotency(user_id, idempotency_key) if idempotency_key else None
        order_id, now = new_order_id(k.sale_id), self.clock()
        # ARGV of purchase-10 and place-8: the deadline is when this caller stops waiting
        # at the latest (queued, then in flight), by the wall clock whatever clock the
        # sale runs on: Redis refuses the call after it
        args: list[Arg] = [
            sale_id,
            user_id,
            ip or "",
            now,
            "1" if idempotency_key else "",
            fingerprint,
            self.idempotency_ttl_s,
            order_id,
            wall_clock_ms() + 2 * self.timeout_ms,
            "",  # ip_mode: the address is checked and counted in this bucket
        ]
        ip_k = self._ip_home(sale_id, ip or "", home, count)
        if ip_k is None:  # unbucketed (one purchase-10 call), or the address counted here
            reply = await self._call("purchase", k.purchase_keys(idem_key), purchase_argv(args))
            if count > 1 and int(reply[0]) == errors.Reply.IP_LIMIT_REACHED:
                # this bucket is the address's IP home: its count has holds to reconcile
                if await self._reconcile_ip(k, await self._listed_holds(k, str(args[2]))):
                    reply = await self._call(
                        "purchase", k.purchase_keys(idem_key), purchase_argv(args)
                    )
            if count > 1 and int(reply[0]) == errors.Reply.SOLD_OUT:
                reply = await self._borrow(sale_id, home, count, k, idem_key, args)
            return self._purchased(reply, order_id, sale_id, user_id, now)
        for _ in range(2):  # twice only when the engine believed the IP limit off
            try:
                args[9] = await self._hold_ip(ip_k, k.sale_id, args)
            except errors.OutcomeUnknown as exc:
                # a hold's answer lost, but no purchase sent: nothing was bought (a hold
                # left is ended at a refusal once its deadline has passed)
                raise errors.EngineUnavailable(f"no order was made: {exc}") from exc
            reply = await self._call("purchase", k.purchase_keys(idem_key), purchase_argv(args))
            if int(reply[0]) == errors.Reply.SOLD_OUT:
                reply = await self._borrow(sale_id, home, count, k, idem_key, args)
            if int(reply[0]) != errors.Reply.IP_HOLD_NEEDED:
                break
            self._ip_limited[sale_id] = True
            args[7] = new_order_id(k.sale_id)  # a claim of the first id may be left over
        if args[9] == "h" and int(reply[0]) != errors.Reply.CREATED:
            # no order was written under this id: the address's count goes back at once
            # (if this fails, the next refusal of the address reconciles it)
            with contextlib.suppress(errors.EngineUnavailable, errors.OutcomeUnknown):
                await self._call("ip_unhold", [ip_k.ips, ip_k.ipholds], [args[7]])
        return self._purchased(reply, str(args[7]), sale_id, user_id, now)

    def _ip_home(self, sale_id: str, ip: str, home: int, count: int) -> SaleKeys | None:
        """The keys of the address's IP home bucket when its count lives there, not in
        the buyer's home (a bucketed drop, an address, two different buckets), else None
        (docs/design.md "Bucketed drops", the per-IP limit)."""
        if count < 2 or not ip:
            return None
        b = home_bucket(ip, count)
        return None if b == home else self.keys(bucket_slot(sale_id, b))

    async def _hold_ip(self, ip_k: SaleKeys, home: str, args: list[Arg]) -> str:
        """Count the purchase of ``args`` in its address's IP home (ip_hold-3); the
        ip_mode for purchase-10 and place-8 (lua/includes/admit.lua). At the limit, the
        holds of orders that are gone are ended (``_reconcile_ip``) and the hold tried
        once more: the address is refused only if it still has as many live or
        in-flight orders as its limit."""
        sale_id = str(args[0])
        if not self._ip_limited.get(sale_id, True):
            return "o"  # off as far as we know: the home bucket says so, or -20
        hold = [ip_k.meta, ip_k.ips, ip_k.ipholds]
        hold_args: list[Arg] = [args[7], args[2], home, args[8]]
        reply = await self._call("ip_hold", hold, hold_args)
        if int(reply[0]) == errors.Reply.IP_LIMIT_REACHED and await self._reconcile_ip(
            ip_k, buckets.ip_holds(reply[2:])
        ):
            reply = await self._call("ip_hold", hold, hold_args)
        code = int(reply[0])
        if len(self._ip_limited) > 10_000:
            self._ip_limited.clear()
        self._ip_limited[sale_id] = code != 0
        if code == 1:
            return "h"
        if code == 0 or code == errors.Reply.SALE_NOT_FOUND:
            return ""  # the limit is off (or no such sale): as an unbucketed purchase
        if code == errors.Reply.IP_LIMIT_REACHED:
            return str(int(reply[1]))  # refused after the replay and per-user checks
        raise errors.refusal(reply)

    async def _listed_holds(self, ip_k: SaleKeys, ip: str) -> list[buckets.IpHold]:
        """The holds of ``ip`` in its IP home, read as ip_hold-3's refusal lists them (the
        oldest 100), for a refusal that purchase-10 gave there (a cold path)."""
        listed = await self.redis.hget(ip_k.ipholds, f"i:{ip}")
        ids = text(listed).split()[:100] if listed else []
        if not ids:
            return []
        packed = await self.redis.hmget(ip_k.ipholds, [f"o:{i}" for i in ids])
        return [buckets.decode_ip_hold(i, p) for i, p in zip(ids, packed, strict=True) if p]

    async def _reconcile_ip(self, ip_k: SaleKeys, listed: list[buckets.IpHold]) -> bool:
        """End the holds (of a refused address) whose orders are gone: released, or never
        to appear (ip_check-3 at each order's home). True when any was gone."""
        by_home: dict[str, list[buckets.IpHold]] = {}
        for hold in listed:
            by_home.setdefault(hold.home, []).append(hold)
        gone: list[Arg] = []
        for slot, holds in by_home.items():
            h = self.keys(slot)
            pairs: list[Arg] = [x for hold in holds for x in (hold.order_id, hold.deadline_ms)]
            states = await self._call("ip_check", [h.orders, h.buyers, h.fences], pairs)
            gone += [hold.order_id for hold, state in zip(holds, states, strict=True) if not state]
        if gone:
            await self._call("ip_unhold", [ip_k.ips, ip_k.ipholds], gone, cache=False)
        return bool(gone)

    async def _unhold_released(self, order_id: str, reply: Any) -> None:
        """A released order's address held in another bucket is uncounted there now (best
        effort: the address's next refusal reconciles it anyway)."""
        sale_id = sale_id_of_order(order_id)
        if int(reply[0]) <= 0 or len(reply) < 17 or not self._ip_limited.get(sale_id, True):
            return
        ip, count = text(reply[16]), await self.buckets_of(sale_id)
        home = bucket_slot(sale_id, home_bucket(ip, count))
        if count < 2 or not ip or home == slot_of_order(order_id):
            return
        ip_k = self.keys(home)
        with contextlib.suppress(errors.EngineUnavailable, errors.OutcomeUnknown):
            await self._call("ip_unhold", [ip_k.ips, ip_k.ipholds], [order_id])

    @staticmethod
    def _purchased(reply: Any, order_id: str, sale_id: str, user_id: str, now: int) -> Purchase:
        """The answer of purchase-10 or place-8 as a Purchase, or its refusal raised."""
        code = int(reply[0])
        if code == errors.Reply.CREATED:
            # {1, serial, kind, expires_ms, price_cents, currency, draw}: the rest is ours
            _, serial, kind, expires_ms, price_cents, currency, draw = reply
            at = ms_to_datetime(now)
            order = Order(
                order_id=order_id,
                sale_id=sale_id,
                user_id=user_id,
                serial=int(serial) if kind == "r" else serial,
                status="pending_payment",
                version=1,
                created_at=at,
                expires_at=ms_to_datetime(int(expires_ms)),
                updated_at=at,
                price_cents=int(price_cents),
                currency=currency,
                draw=None if int(draw) < 0 else int(draw),
            )
            return Purchase(order=order, replayed=False)
        if code < 0:
            raise errors.refusal(reply)
        return Purchase(order=order_from_reply(reply[1:]), replayed=True)

    async def _borrow(
        self,
        sale_id: str,
        home: int,
        count: int,
        k: SaleKeys,
        idem_key: str | None,
        args: list[Arg],
    ) -> Any:
        """The home bucket of a bucketed drop is dry (every check passed there): take a
        serial from another bucket (take-5), place the order at home (place-8, every
        check again), end the claim (give_back-3). Sold out only when no bucket lends.
        A failure between take and place leaves a claim the timers sweep (sweep_claims).
        The reply is place-8's (purchase-10's shape) or sold_out's."""
        order_id = str(args[7])
        for b in buckets.lenders(home, count):
            lender = self.keys(bucket_slot(sale_id, b))
            took = await self._take(lender, order_id, k.sale_id, args[8])
            if int(took[0]) == errors.Reply.SOLD_OUT:
                continue
            if int(took[0]) < 0:
                return took
            _, kind, serial, draw = took
            placed = await self._place(k, idem_key, [*args, kind, serial, draw])
            created = int(placed[0]) == errors.Reply.CREATED
            with contextlib.suppress(errors.EngineUnavailable, errors.OutcomeUnknown):
                # the answer stands whatever happens here: a claim left is swept later
                await self._give_back(lender, order_id, placed=created)
            return placed
        return [errors.Reply.SOLD_OUT, ""]

    async def _take(self, lender: SaleKeys, order_id: str, home: str, deadline: Arg) -> Any:
        """take-5 on the lending bucket: {1, kind, serial, draw} or a refusal."""
        return await self._call(
            "take",
            [lender.meta, lender.segments, lender.items, lender.returned, lender.claims],
            [order_id, home, wall_clock_ms(), deadline],
        )

    async def _place(self, k: SaleKeys, idem_key: str | None, args: list[Arg]) -> Any:
        """place-8 on the home bucket (ARGV: purchase-10's, then kind, serial, draw)."""
        keys = [k.meta, k.buyers, k.ips, k.expiry, k.events, k.orders, idem_key or k.meta]
        return await self._call("place", [*keys, k.fences], args)

    async def _give_back(self, lender: SaleKeys, order_id: str, *, placed: bool) -> bool:
        """End a claim of take-5: the serial comes back unless the order holds it."""
        reply = await self._call(
            "give_back",
            [lender.meta, lender.returned, lender.claims],
            [order_id, "placed" if placed else "return"],
        )
        return int(reply[0]) == 1

    async def sweep_claims(self, slot: str, *, older_than_ms: int | None = None) -> int:
        """End the claims of ``slot`` left by purchases that stopped between take-5 and
        place-8 (a crash, a lost connection): fence each order id at its home first
        (fence-2), so a place still on its way is refused, then give the serial back, or
        keep it with the order when the place won. The number of claims ended."""
        k = self.keys(slot)
        stale = buckets.stale_after_ms(self.timeout_ms) if older_than_ms is None else older_than_ms
        ended = 0
        now = wall_clock_ms()
        for field, packed in (await self.redis.hgetall(k.claims)).items():
            claim = buckets.decode_claim(field, packed)
            if now - claim.taken_ms < stale:
                continue
            home = self.keys(claim.home)
            kept = await self._call("fence", [home.orders, home.fences], [claim.order_id, now])
            ended += await self._give_back(k, claim.order_id, placed=int(kept) == 1)
        return ended

    async def _release(self, script: str, order_id: str, args: list[Arg]) -> Order:
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            script,
            [k.meta, k.buyers, k.ips, k.returned, k.expiry, k.events, k.orders],
            [order_id, *args],
        )
        order, _ = errors.order_of(reply)
        await self._unhold_released(order_id, reply)
        return order

    async def cancel(
        self, order_id: str, *, user_id: str | None = None, reason: str = "cancelled by buyer"
    ) -> Order:
        """Cancel a pending order; ``user_id`` set means only that buyer's order may be."""
        return await self._release("cancel", order_id, [user_id or "", self.clock(), reason])

    async def expire(self, order_id: str) -> Order:
        return await self._release("expire", order_id, [self.clock()])

    async def confirm_payment(self, order_id: str, payment_id: str) -> Order:
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "confirm_payment",
            [k.meta, k.expiry, k.events, k.orders],
            [order_id, payment_id, self.clock()],
        )
        order, _ = errors.order_of(reply)
        return order

    # -- refunds of paid orders (the payment flow decides, the engine moves the order) ----

    async def request_refund(
        self, order_id: str, *, user_id: str | None, reason: str
    ) -> tuple[Order, bool]:
        """paid -> refund_pending (cancelled before delivery); True when it already was."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "request_refund",
            [k.events, k.orders],
            [order_id, user_id or "", self.clock(), reason],
        )
        return errors.order_of(reply)

    async def refund(self, order_id: str, *, reason: str) -> tuple[Order, bool]:
        """refund_pending -> refunded: the serial returns to the pool; True on a replay."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "refund",
            [k.meta, k.buyers, k.ips, k.returned, k.events, k.orders],
            [order_id, self.clock(), reason],
        )
        refunded = errors.order_of(reply)
        await self._unhold_released(order_id, reply)
        return refunded

    async def reject_refund(self, order_id: str, *, reason: str) -> tuple[Order, bool]:
        """refund_pending -> paid again (the buyer keeps the serial)."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "reject_refund",
            [k.events, k.orders],
            [order_id, self.clock(), reason],
        )
        return errors.order_of(reply)

    async def refund_delivered(self, order_id: str, *, reason: str) -> tuple[Order, bool]:
        """delivered | completed -> refunded (an approved after-sales ticket, its money
        back): the token stays with the buyer, so the serial stays sold (meta ``kept``) and
        the order stays in its buyer's and address's counts."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "refund_delivered",
            [k.meta, k.completion, k.events, k.orders],
            [order_id, self.clock(), reason],
        )
        return errors.order_of(reply)

    # -- delivery (chain/moves.py) and completion -----------------------------------------

    async def start_delivery(self, order_id: str) -> tuple[Order, bool]:
        """paid -> delivering (before the first mint is signed); True when it already was."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "start_delivery", [k.events, k.orders], [order_id, self.clock()]
        )
        return errors.order_of(reply)

    async def confirm_delivery(self, order_id: str) -> tuple[Order, bool]:
        """delivering -> delivered; completed by the timers after the after-sales window."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "confirm_delivery",
            [k.meta, k.completion, k.events, k.orders],
            [order_id, self.clock()],
        )
        return errors.order_of(reply)

    async def fail_delivery(self, order_id: str, reason: str) -> tuple[Order, bool]:
        """delivering -> paid (the deliverer gave up; an alert says why)."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "fail_delivery", [k.events, k.orders], [order_id, self.clock(), reason]
        )
        return errors.order_of(reply)

    async def complete(self, order_id: str, *, user_id: str | None = None) -> tuple[Order, bool]:
        """delivered -> completed: by its buyer (``user_id``) at any time, or by the timers
        (no ``user_id``) once the window has passed (else ``NotDue``)."""
        k = self.keys(slot_of_order(order_id))
        reply = await self._transition(
            "complete",
            [k.completion, k.events, k.orders],
            [order_id, user_id or "", self.clock()],
        )
        return errors.order_of(reply)

    async def due_completions(self, sale_id: str, *, limit: int = 500) -> list[str]:
        """Delivered orders whose after-sales window has passed, oldest first."""
        members = await self.redis.zrangebyscore(
            self.keys(sale_id).completion, "-inf", self.clock(), start=0, num=limit
        )
        return [text(m) for m in members]

    # -- the per-address request rate ------------------------------------------------------

    async def count_request(self, ip: str) -> int:
        """Count one request of ``ip`` in the current second; the count so far."""
        key = request_window(self.namespace, ip, self.clock() // 1000)
        return int(await self._call("ip_rate", [key], [REQUEST_WINDOW_TTL_S], cache=False))

    async def get_order(self, order_id: str) -> Order | None:
        packed = await self.redis.hget(self.keys(slot_of_order(order_id)).orders, order_id)
        return None if packed is None else order_from_record(packed)

    async def get_orders(self, sale_id: str, order_ids: Sequence[str]) -> list[Order]:
        """The orders of ``sale_id`` among ``order_ids`` (those it has), each slot's in
        the given order (the slot, a bucket of the sale, is in the id)."""
        by_slot: dict[str, list[str]] = {}
        for order_id in order_ids:
            if sale_id_of_order(order_id) == sale_id:
                by_slot.setdefault(slot_of_order(order_id), []).append(order_id)
        orders: list[Order] = []
        for slot, ids in by_slot.items():
            for start in range(0, len(ids), 1000):
                values = await self.redis.hmget(self.keys(slot).orders, ids[start : start + 1000])
                orders.extend(order_from_record(v) for v in values if v is not None)
        return orders

    async def buyer_orders(self, sale_id: str, user_id: str) -> list[Order]:
        """A buyer's orders in a sale, oldest first: its released ones, then its live ones
        (both kept in the buyers hash, so no scan of the sale)."""
        home = bucket_slot(sale_id, home_bucket(user_id, await self.buckets_of(sale_id)))
        released, live = await self.redis.hmget(
            self.keys(home).buyers, [history_field(user_id), live_field(user_id)]
        )
        ids = order_ids_in(home, text(released or b"")) + order_ids_in(home, text(live or b""))
        orders = await self.get_orders(sale_id, ids)
        orders.sort(key=lambda order: order.created_at)
        return orders

    async def order_ids(self, sale_id: str) -> list[str]:
        """Every order id of a sale (the orders hashes' fields, over its buckets)."""
        return [
            text(f)
            for slot in await self.slots(sale_id)
            async for f, _ in self.redis.hscan_iter(self.keys(slot).orders)
        ]

    async def orders_of_sale(self, sale_id: str) -> list[Order]:
        """Every order of a sale (over its buckets), read by HSCAN pages."""
        return [
            order_from_record(v)
            for slot in await self.slots(sale_id)
            async for _, v in self.redis.hscan_iter(self.keys(slot).orders, count=1000)
        ]

    async def upgrade_orders(self, sale_id: str, *, chunk: int = 2000) -> int:
        """Move a sale's orders written before packed records into the packed form
        (lua/upgrade_orders-2.lua), ``chunk`` orders per script call; the number moved.
        Run with no purchase in flight (``flashsale db upgrade``, docs/design.md)."""
        k = self.keys(sale_id)
        moved = 0
        batch: list[Arg] = []
        # HSCAN returns every field present throughout; the ones moved meanwhile are gone
        async for field, value in self.redis.hscan_iter(k.buyers, match="n:*", count=1000):
            user, n = text(field)[2:], int(value)
            batch += [user, n, *(legacy_order_id(sale_id, user, i) for i in range(1, n + 1))]
            if len(batch) >= chunk:
                moved += await self._upgrade_chunk(k, batch)
                batch = []
        if batch:
            moved += await self._upgrade_chunk(k, batch)
        return moved

    async def _upgrade_chunk(self, k: SaleKeys, batch: list[Arg]) -> int:
        reply = await self._call(
            "upgrade_orders", [k.buyers, k.orders], [k.order_prefix, *batch], cache=False
        )
        return int(reply[1])

    async def pending_order_ids(self, sale_id: str, *, limit: int = 10_000) -> list[str]:
        """Pending orders of a sale, earliest deadline first within each of its buckets (the
        expiry schedules hold them)."""
        found: list[str] = []
        for slot in await self.slots(sale_id):
            members = await self.redis.zrange(self.keys(slot).expiry, 0, limit - len(found) - 1)
            found.extend(text(m) for m in members)
            if len(found) >= limit:
                break
        return found

    async def due_expiries(self, sale_id: str, *, limit: int = 500) -> list[str]:
        """Pending orders whose payment deadline has passed, oldest first."""
        members = await self.redis.zrangebyscore(
            self.keys(sale_id).expiry, "-inf", self.clock(), start=0, num=limit
        )
        return [text(m) for m in members]
