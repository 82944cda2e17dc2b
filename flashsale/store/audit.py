"""``flashsale audit SALE``: every invariant of DESIGN.md across Redis and PostgreSQL.

Cheap on a 1,000,000-order sale: PostgreSQL answers with server-side
aggregates (counts and at most a few examples per check), and Redis is read in
bounded chunks (the buyers hash gives every order id, since order ids are a
function of (sale, buyer, n)); each chunk is compared with PostgreSQL by one
query that returns only the differences. Memory stays bounded by the chunk.

Checks:
- counters: ``sold + reserved + available == total`` with every term >= 0, and
  the pool agrees (``drawn - len(returned) == reserved + sold``), and the
  orders agree (pending == reserved, paid + delivered + refund_pending == sold:
  a cancelled paid order keeps its serial until its refund is decided);
- invariant 2: no serial held by two live orders (PostgreSQL), and no serial
  waiting in the pool of released serials while a live order holds it;
- invariant 3: no buyer (or address) over the highest limit the sale had;
- every buyer counted in Redis has its orders, and its live count matches;
- invariant 4: every order Redis acknowledged is in PostgreSQL with the same
  state once the write-behind has drained (before that, the gap is ``lag``),
  and PostgreSQL has no order Redis does not know (Redis lost a write).
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import msgspec

from flashsale.engine.engine import order_id_for
from flashsale.engine.keys import SaleKeys
from flashsale.store import keys as store_keys
from flashsale.store.events import LIVE, SOLD, text
from flashsale.store.lag import stream_lag
from flashsale.store.queries import q
from flashsale.store.streams import AnyRedis

CHUNK = 5000  # orders per Redis pipeline and per PostgreSQL comparison
EXAMPLES = 10


class Violation(msgspec.Struct, kw_only=True):
    code: str
    detail: str
    count: int = 1
    examples: list[str] = msgspec.field(default_factory=list)


class RedisCounts(msgspec.Struct, kw_only=True):
    total: int = 0
    drawn: int = 0
    reserved: int = 0
    sold: int = 0
    available: int = 0
    returned: int = 0
    orders: int = 0  # orders found through the buyers (deep audit only)
    pending: int = 0
    paid: int = 0  # paid, delivered or refund_pending: what ``sold`` counts


class StreamState(msgspec.Struct, kw_only=True):
    pending: int
    undelivered: int
    oldest_age_ms: int
    dead_letters: int


class AuditReport(msgspec.Struct, kw_only=True):
    ok: bool
    violations: list[Violation]
    persisted: int  # the sale's orders in PostgreSQL, any status
    lag: int  # orders acknowledged by Redis not yet persisted (or persisted at an older state)
    sale_id: str
    drained: bool  # the write-behind had nothing left to write for this sale
    settled: bool  # the sale did not change while it was audited (no live traffic)
    deep: bool  # every order compared (False: counters and aggregates only)
    checked_orders: int
    redis: RedisCounts
    postgres: dict[str, int]  # orders by status
    stream: StreamState
    duration_ms: int


def _int(value: Any, default: int = 0) -> int:
    return int(value) if value not in (None, b"", "") else default


_META = ("sale_id", "total", "drawn", "reserved", "sold", "per_user_limit", "peak_user_limit")
_ORDER_READ = ("status", "version", "user_id")
MAX_TRACKED = 100_000  # orders behind in PostgreSQL remembered for the re-check


async def _snapshot(redis: AnyRedis, keys: SaleKeys) -> tuple[list[Any], int, str | None]:
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


async def audit_sale(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    namespace: str,
    sale_id: str,
    *,
    deep: bool = True,
    chunk: int = CHUNK,
) -> AuditReport:
    """Audit one sale; safe to run during a live sale (see ``settled`` and ``drained``).

    Checks that compare readings taken at different moments (Redis aggregates
    against the orders scanned chunk by chunk, PostgreSQL counts against Redis
    counters, the pool against PostgreSQL) are made only when the sale did not
    change during the audit (``settled``: its stream's last id is the same at the
    end as at the start) and, for PostgreSQL, when the write-behind had drained.
    Every other check reads one atomic snapshot, or re-reads before it reports.
    """
    started = time.monotonic()
    keys = SaleKeys(namespace, sale_id)
    found: list[Violation] = []

    def violation(
        code: str, detail: str, count: int = 1, examples: list[str] | None = None
    ) -> None:
        found.append(
            Violation(code=code, detail=detail, count=count, examples=(examples or [])[:EXAMPLES])
        )

    # -- Redis counters (one atomic snapshot) --------------------------------------------
    meta, returned, last_id = await _snapshot(redis, keys)
    in_redis = meta[0] is not None
    counts = RedisCounts()
    if in_redis:
        counts.total, counts.drawn = _int(meta[1]), _int(meta[2])
        counts.reserved, counts.sold = _int(meta[3]), _int(meta[4])
        counts.available = counts.total - counts.reserved - counts.sold
        counts.returned = returned
        if min(counts.reserved, counts.sold, counts.available, counts.drawn) < 0:
            violation(
                "oversold",
                f"negative counter: reserved={counts.reserved} "
                f"sold={counts.sold} available={counts.available} drawn={counts.drawn}",
            )
        if counts.drawn > counts.total:
            violation("pool_mismatch", f"drawn {counts.drawn} > total {counts.total}")
        if counts.drawn - counts.returned != counts.reserved + counts.sold:
            violation(
                "pool_mismatch",
                f"drawn {counts.drawn} - returned {counts.returned} != reserved "
                f"{counts.reserved} + sold {counts.sold}: a serial is taken by no order "
                "or held twice",
            )

    # -- PostgreSQL aggregates -------------------------------------------------------------
    async with pool.acquire() as conn:
        sale_row = await conn.fetchrow(q("audit_sale"), sale_id)
        by_status = {
            r["status"]: int(r["n"]) for r in await conn.fetch(q("audit_status_counts"), sale_id)
        }
        dead = int(await conn.fetchval(q("audit_dead_letters"), sale_id))
        twice = await conn.fetch(q("audit_live_serial_twice"), sale_id)
    if twice:
        violation(
            "serial_held_twice",
            "a serial is held by two live orders in PostgreSQL",
            len(twice),
            [f"{r['serial']}: {', '.join(r['orders'])}" for r in twice],
        )
    max_limit = int(sale_row["max_per_user_limit"]) if sale_row else None
    if in_redis:
        max_limit = max(max_limit or 0, _int(meta[5], 1), _int(meta[6], 1))
    persisted = sum(by_status.values())
    if not in_redis:
        if sale_row is None:
            violation("sale_not_found", f"no sale {sale_id} in Redis nor in PostgreSQL")
        else:
            violation("sale_missing_in_redis", f"sale {sale_id} is in PostgreSQL, not in Redis")

    # -- every order: Redis against PostgreSQL -------------------------------------------
    state = _DeepState()
    if deep and in_redis:
        batch: list[tuple[str, int]] = []
        in_batch = 0  # orders of the buyers in the batch
        async for field, value in redis.hscan_iter(keys.buyers, match="n:*", count=2000):
            batch.append((text(field)[2:], int(value)))
            in_batch += int(value)
            if in_batch >= chunk:
                await _check_buyers(redis, pool, keys, sale_id, batch, max_limit or 1, state)
                batch, in_batch = [], 0
        if batch:
            await _check_buyers(redis, pool, keys, sale_id, batch, max_limit or 1, state)
        counts.orders, counts.pending, counts.paid = state.orders, state.pending, state.paid
        for code, (count, detail, examples) in state.problems.items():
            violation(code, detail, count, examples)

    lag_state = await stream_lag(redis, namespace, sale_id)
    drained = lag_state.entries == 0
    lag_count = len(state.behind) + state.untracked if deep else lag_state.entries
    if deep and in_redis and drained and lag_count:
        # Behind when compared, but maybe written since: compare those orders again.
        still = await _still_behind(redis, pool, keys, sale_id, list(state.behind))
        drained = (await stream_lag(redis, namespace, sale_id)).entries == 0
        lag_count = len(still) + state.untracked
        if drained and lag_count:
            violation(
                "not_persisted",
                "orders acknowledged by Redis are missing or stale in PostgreSQL with "
                "the write-behind drained",
                lag_count,
                still,
            )
    _, _, last_after = await _snapshot(redis, keys)
    settled = in_redis and last_after == last_id
    if deep and in_redis and persisted > state.matched:
        violation(
            "missing_in_redis",
            "orders in PostgreSQL that Redis does not have (Redis lost writes)",
            persisted - state.matched,
        )
    if drained and max_limit is not None:
        async with pool.acquire() as conn:
            over = await conn.fetch(q("audit_buyers_over_limit"), sale_id, max_limit)
            over_ip: list[Any] = []
            if sale_row and sale_row["ip_limit_always_on"] and sale_row["max_per_ip_limit"]:
                over_ip = await conn.fetch(
                    q("audit_ips_over_limit"), sale_id, int(sale_row["max_per_ip_limit"])
                )
        if over:
            violation(
                "buyer_over_limit",
                f"buyers with more than {max_limit} live orders in PostgreSQL",
                len(over),
                [f"{r['user_id']}: {r['n']}" for r in over],
            )
        if over_ip:
            violation(
                "ip_over_limit",
                "addresses over the per-IP limit in PostgreSQL",
                len(over_ip),
                [f"{r['ip']}: {r['n']}" for r in over_ip],
            )
    if deep and settled:
        if state.pending != counts.reserved or state.paid != counts.sold:
            violation(
                "counter_mismatch",
                f"orders in Redis: {state.pending} pending, {state.paid} "
                "paid/delivered/refund_pending; "
                f"counters: reserved {counts.reserved}, sold {counts.sold}",
            )
        await _check_pool(redis, pool, keys, sale_id, chunk, violation, drained)
        if drained and lag_count == 0:
            async with pool.acquire() as conn:  # read again: it may have caught up since
                now = {
                    r["status"]: int(r["n"])
                    for r in await conn.fetch(q("audit_status_counts"), sale_id)
                }
            pg_pending = now.get("pending_payment", 0)
            pg_sold = sum(now.get(status, 0) for status in SOLD)
        if drained and lag_count == 0 and (pg_pending, pg_sold) != (counts.reserved, counts.sold):
            violation(
                "counter_mismatch",
                f"PostgreSQL: {pg_pending} pending, {pg_sold} paid/delivered/"
                "refund_pending; Redis: "
                f"reserved {counts.reserved}, sold {counts.sold}",
            )
    dead_in_redis = int(await redis.xlen(store_keys.dead_letters(keys)))
    return AuditReport(
        ok=not found,
        violations=found,
        persisted=persisted,
        lag=lag_count,
        sale_id=sale_id,
        drained=drained,
        settled=settled,
        deep=deep,
        checked_orders=state.orders,
        redis=counts,
        postgres=by_status,
        stream=StreamState(
            pending=lag_state.pending,
            undelivered=lag_state.undelivered,
            oldest_age_ms=lag_state.oldest_age_ms,
            dead_letters=max(dead, dead_in_redis),
        ),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def _check_pool(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    keys: SaleKeys,
    sale_id: str,
    chunk: int,
    violation: Any,
    drained: bool,
) -> None:
    """Released serials waiting in the pool: each once, and held by no live order."""
    serials = [text(v).partition(":")[2] for v in await redis.lrange(keys.returned, 0, -1)]
    if len(set(serials)) != len(serials):
        violation("pool_mismatch", "a released serial is twice in the pool")
    if not drained:
        return
    async with pool.acquire() as conn:
        for start in range(0, len(serials), chunk):
            held = await conn.fetch(
                q("audit_pool_serials_held"), sale_id, serials[start : start + chunk]
            )
            if held:
                violation(
                    "serial_held_twice",
                    "a serial waits in the pool while a live order holds it",
                    len(held),
                    [f"{r['serial']}: {r['order_id']}" for r in held],
                )


class _DeepState:
    def __init__(self) -> None:
        self.orders = 0
        self.pending = 0
        self.paid = 0
        self.matched = 0  # orders found in PostgreSQL (any version)
        self.behind: set[str] = set()  # missing or older in PostgreSQL when compared
        self.untracked = 0  # behind, beyond MAX_TRACKED
        self.incomplete = 0  # buyers still buying while read: their counts not checked
        self.problems: dict[str, tuple[int, str, list[str]]] = {}

    def problem(self, code: str, detail: str, example: str) -> None:
        count, _, examples = self.problems.get(code, (0, detail, []))
        if len(examples) < EXAMPLES:
            examples.append(example)
        self.problems[code] = (count + 1, detail, examples)


async def _read_orders(
    redis: AnyRedis, keys: SaleKeys, order_ids: list[str]
) -> list[tuple[str, int] | None]:
    pipe = redis.pipeline(transaction=True)
    for order_id in order_ids:
        pipe.hmget(keys.order(order_id), ["status", "version"])
    replies = await pipe.execute()
    return [None if v[0] is None else (text(v[0]), int(v[1])) for v in replies]


async def _still_behind(
    redis: AnyRedis, pool: asyncpg.Pool, keys: SaleKeys, sale_id: str, order_ids: list[str]
) -> list[str]:
    """Orders that are still missing or older in PostgreSQL than in Redis, re-read now."""
    still: list[str] = []
    for start in range(0, len(order_ids), CHUNK):
        part = order_ids[start : start + CHUNK]
        states = await _read_orders(redis, keys, part)
        present = [(o, s) for o, s in zip(part, states, strict=True) if s is not None]
        async with pool.acquire() as conn:
            diffs = await conn.fetch(
                q("audit_compare"),
                sale_id,
                [o for o, _ in present],
                [s[0] for _, s in present],
                [s[1] for _, s in present],
            )
        still += [
            f"{r['order_id']}: "
            + (
                "not in PostgreSQL"
                if r["pg_version"] is None
                else f"v{r['pg_version']} in PostgreSQL, v{r['redis_version']} in Redis"
            )
            for r in diffs
            if r["pg_version"] is None or r["pg_version"] < r["redis_version"]
        ]
    return still


async def _check_buyers(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    keys: SaleKeys,
    sale_id: str,
    buyers: list[tuple[str, int]],
    max_limit: int,
    state: _DeepState,
) -> None:
    # One MULTI per chunk (every key is in the sale's slot): the buyers' orders, their
    # purchase counts and live counts are read in one atomic snapshot, even during a
    # live sale. A buyer who bought again since the scan read its count is read again
    # (up to 3 times; one still buying is left to the next audit for its count checks).
    snapshots: list[tuple[str, list[tuple[str, Any]], Any, bool]] = []
    todo = buyers
    for attempt in range(3):
        pipe = redis.pipeline(transaction=True)
        for user, n in todo:
            for i in range(1, n + 1):
                pipe.hmget(keys.order(order_id_for(sale_id, user, i)), _ORDER_READ)
        pipe.hmget(keys.buyers, [f"c:{user}" for user, _ in todo])
        pipe.hmget(keys.buyers, [f"n:{user}" for user, _ in todo])
        replies = await pipe.execute()
        held_now, n_now = replies[-2], replies[-1]
        moved: list[tuple[str, int]] = []
        at = 0
        for (user, n), c, n2 in zip(todo, held_now, n_now, strict=True):
            orders = [
                (order_id_for(sale_id, user, i), replies[at + i - 1]) for i in range(1, n + 1)
            ]
            at += n
            if _int(n2) != n and attempt < 2:
                moved.append((user, _int(n2)))
                continue
            snapshots.append((user, orders, c, _int(n2) == n))
        if not moved:
            break
        todo = moved
    live: dict[str, int] = {}
    order_ids: list[str] = []
    statuses: list[str] = []
    versions: list[int] = []
    for user, orders, c, complete in snapshots:
        for order_id, values in orders:
            if values[0] is None:
                state.problem(
                    "counted_without_order",
                    "a buyer is counted for an order Redis does not have",
                    order_id,
                )
                continue
            status, version = text(values[0]), int(values[1])
            state.orders += 1
            if status in LIVE:
                live[user] = live.get(user, 0) + 1
            if status == "pending_payment":
                state.pending += 1
            elif status in SOLD:
                state.paid += 1
            order_ids.append(order_id)
            statuses.append(status)
            versions.append(version)
        if not complete:
            state.incomplete += 1
            continue
        count = live.get(user, 0)
        if count != _int(c):
            state.problem(
                "buyer_count_mismatch",
                "a buyer's live-order count differs from its live orders",
                f"{user}: counted {_int(c)}, holds {count}",
            )
        if count > max_limit:
            state.problem(
                "buyer_over_limit",
                f"buyers with more than {max_limit} live orders in Redis",
                f"{user}: {count}",
            )
    if not order_ids:
        return
    async with pool.acquire() as conn:
        diffs = await conn.fetch(q("audit_compare"), sale_id, order_ids, statuses, versions)
    missing = 0
    ahead: list[Any] = []
    for row in diffs:
        if row["pg_version"] is None or row["pg_version"] < row["redis_version"]:
            missing += row["pg_version"] is None
            if len(state.behind) < MAX_TRACKED:
                state.behind.add(row["order_id"])
            else:
                state.untracked += 1
        else:
            ahead.append(row)
    state.matched += len(order_ids) - missing
    if not ahead:
        return
    # PostgreSQL newer than (or different from) what Redis said a moment ago: the order
    # may have moved on since; read Redis again, after PostgreSQL, before calling it so.
    fresh = await _read_orders(redis, keys, [r["order_id"] for r in ahead])
    for row, now in zip(ahead, fresh, strict=True):
        if now is None:
            continue  # counted_without_order would have caught a vanished order
        status, version = now
        if version < row["pg_version"]:
            state.problem(
                "postgres_ahead",
                "PostgreSQL holds a newer state than Redis (Redis lost a transition)",
                f"{row['order_id']}: v{row['pg_version']} {row['pg_status']} vs "
                f"v{version} {status}",
            )
        elif version == row["pg_version"] and status != row["pg_status"]:
            state.problem(
                "state_mismatch",
                "same version, different state",
                f"{row['order_id']}: {row['pg_status']} vs {status}",
            )


def render(report: AuditReport) -> str:
    """A human-readable report (the CLI prints it unless --json)."""
    r = report.redis
    lines = [
        f"audit of sale {report.sale_id}: {'OK' if report.ok else 'VIOLATIONS'}",
        f"  redis     total={r.total} available={r.available} reserved={r.reserved} "
        f"sold={r.sold} drawn={r.drawn} returned={r.returned}"
        + (f" orders={r.orders}" if report.deep else ""),
        f"  postgres  persisted={report.persisted} "
        + " ".join(f"{k}={v}" for k, v in sorted(report.postgres.items())),
        f"  stream    pending={report.stream.pending} undelivered={report.stream.undelivered} "
        f"oldest_age_ms={report.stream.oldest_age_ms} dead_letters={report.stream.dead_letters}",
        f"  lag={report.lag} drained={report.drained} settled={report.settled} "
        f"checked_orders={report.checked_orders} "
        f"({'deep' if report.deep else 'quick'}, {report.duration_ms} ms)",
    ]
    for v in report.violations:
        lines.append(f"  VIOLATION {v.code} x{v.count}: {v.detail}")
        lines.extend(f"      {example}" for example in v.examples)
    return "\n".join(lines)
