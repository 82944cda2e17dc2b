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
from redis.asyncio import Redis, RedisCluster

from flashsale.engine.engine import order_id_for
from flashsale.engine.keys import SaleKeys
from flashsale.store import keys as store_keys
from flashsale.store.events import LIVE, SOLD, text
from flashsale.store.persist import stream_lag
from flashsale.store.queries import q

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
    deep: bool  # every order compared (False: counters and aggregates only)
    checked_orders: int
    redis: RedisCounts
    postgres: dict[str, int]  # orders by status
    stream: StreamState
    duration_ms: int


def _int(value: Any, default: int = 0) -> int:
    return int(value) if value not in (None, b"", "") else default


async def audit_sale(
    redis: Redis | RedisCluster,
    pool: asyncpg.Pool,
    namespace: str,
    sale_id: str,
    *,
    deep: bool = True,
    chunk: int = CHUNK,
) -> AuditReport:
    started = time.monotonic()
    keys = SaleKeys(namespace, sale_id)
    found: list[Violation] = []

    def violation(
        code: str, detail: str, count: int = 1, examples: list[str] | None = None
    ) -> None:
        found.append(
            Violation(code=code, detail=detail, count=count, examples=(examples or [])[:EXAMPLES])
        )

    # -- Redis counters ----------------------------------------------------------------
    meta = await redis.hmget(
        keys.meta,
        ["sale_id", "total", "drawn", "reserved", "sold", "per_user_limit", "peak_user_limit"],
    )
    in_redis = meta[0] is not None
    counts = RedisCounts()
    if in_redis:
        counts.total, counts.drawn = _int(meta[1]), _int(meta[2])
        counts.reserved, counts.sold = _int(meta[3]), _int(meta[4])
        counts.available = counts.total - counts.reserved - counts.sold
        counts.returned = int(await redis.llen(keys.returned))
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
        if max_limit is not None:
            over = await conn.fetch(q("audit_buyers_over_limit"), sale_id, max_limit)
            if over:
                violation(
                    "buyer_over_limit",
                    f"buyers with more than {max_limit} live orders",
                    len(over),
                    [f"{r['user_id']}: {r['n']}" for r in over],
                )
        if sale_row and sale_row["ip_limit_always_on"] and sale_row["max_per_ip_limit"]:
            ip_limit = int(sale_row["max_per_ip_limit"])
            over_ip = await conn.fetch(q("audit_ips_over_limit"), sale_id, ip_limit)
            if over_ip:
                violation(
                    "ip_over_limit",
                    f"addresses with more than {ip_limit} live orders",
                    len(over_ip),
                    [f"{r['ip']}: {r['n']}" for r in over_ip],
                )
    persisted = sum(by_status.values())
    if not in_redis:
        if sale_row is None:
            violation("sale_not_found", f"no sale {sale_id} in Redis nor in PostgreSQL")
        else:
            violation("sale_missing_in_redis", f"sale {sale_id} is in PostgreSQL, not in Redis")

    # -- every order: Redis against PostgreSQL -------------------------------------------
    missing_pg: list[str] = []
    stale: list[str] = []
    lag_count = 0
    matched = 0
    checked = 0
    if deep and in_redis:
        state = _DeepState()
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
        checked, matched = state.orders, state.matched
        missing_pg, stale = state.missing_pg, state.stale
        lag_count = state.missing_count + state.stale_count
        for code, (count, detail, examples) in state.problems.items():
            violation(code, detail, count, examples)
        if state.pending != counts.reserved or state.paid != counts.sold:
            violation(
                "counter_mismatch",
                f"orders in Redis: {state.pending} pending, {state.paid} "
                "paid/delivered/refund_pending; "
                f"counters: reserved {counts.reserved}, sold {counts.sold}",
            )
        # released serials waiting in the pool must not be held by a live order
        pool_serials = [text(v).partition(":")[2] for v in await redis.lrange(keys.returned, 0, -1)]
        if len(set(pool_serials)) != len(pool_serials):
            violation("pool_mismatch", "a released serial is twice in the pool")
        async with pool.acquire() as conn:
            for start in range(0, len(pool_serials), chunk):
                held = await conn.fetch(
                    q("audit_pool_serials_held"), sale_id, pool_serials[start : start + chunk]
                )
                if held:
                    violation(
                        "serial_held_twice",
                        "a serial waits in the pool while a live order holds it",
                        len(held),
                        [f"{r['serial']}: {r['order_id']}" for r in held],
                    )

    lag_state = await stream_lag(redis, namespace, sale_id)
    dead_in_redis = int(await redis.xlen(store_keys.dead_letters(keys)))
    drained = lag_state.entries == 0
    if not deep:
        lag_count = lag_state.entries
    if deep and in_redis:
        if drained and lag_count:
            violation(
                "not_persisted",
                "orders acknowledged by Redis are missing or stale in PostgreSQL with "
                "the write-behind drained",
                lag_count,
                missing_pg + stale,
            )
        if persisted > matched:
            extra = persisted - matched
            violation(
                "missing_in_redis",
                "orders in PostgreSQL that Redis does not have (Redis lost writes)",
                extra,
            )
        if drained and lag_count == 0:
            pg_pending = by_status.get("pending_payment", 0)
            pg_sold = sum(by_status.get(status, 0) for status in SOLD)
            if pg_pending != counts.reserved or pg_sold != counts.sold:
                violation(
                    "counter_mismatch",
                    f"PostgreSQL: {pg_pending} pending, {pg_sold} paid/delivered/"
                    f"refund_pending; Redis: "
                    f"reserved {counts.reserved}, sold {counts.sold}",
                )
    return AuditReport(
        ok=not found,
        violations=found,
        persisted=persisted,
        lag=lag_count,
        sale_id=sale_id,
        drained=drained,
        deep=deep,
        checked_orders=checked,
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


class _DeepState:
    def __init__(self) -> None:
        self.orders = 0
        self.pending = 0
        self.paid = 0
        self.matched = 0
        self.missing_count = 0
        self.stale_count = 0
        self.missing_pg: list[str] = []
        self.stale: list[str] = []
        self.problems: dict[str, tuple[int, str, list[str]]] = {}

    def problem(self, code: str, detail: str, example: str) -> None:
        count, _, examples = self.problems.get(code, (0, detail, []))
        if len(examples) < EXAMPLES:
            examples.append(example)
        self.problems[code] = (count + 1, detail, examples)


_ORDER_READ = ("status", "version", "user_id")


async def _check_buyers(
    redis: Redis | RedisCluster,
    pool: asyncpg.Pool,
    keys: SaleKeys,
    sale_id: str,
    buyers: list[tuple[str, int]],
    max_limit: int,
    state: _DeepState,
) -> None:
    pipe = redis.pipeline(transaction=False)
    ids: list[tuple[str, str]] = []  # (user, order_id)
    for user, n in buyers:
        for i in range(1, n + 1):
            order_id = order_id_for(sale_id, user, i)
            ids.append((user, order_id))
            pipe.hmget(keys.order(order_id), _ORDER_READ)
    pipe.hmget(keys.buyers, [f"c:{user}" for user, _ in buyers])
    replies = await pipe.execute()
    held = dict(zip((u for u, _ in buyers), replies[-1], strict=True))
    live: dict[str, int] = {}
    order_ids: list[str] = []
    statuses: list[str] = []
    versions: list[int] = []
    for (user, order_id), values in zip(ids, replies[:-1], strict=True):
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
    for user, _ in buyers:
        count = live.get(user, 0)
        if count != _int(held.get(user)):
            state.problem(
                "buyer_count_mismatch",
                "a buyer's live-order count differs from its live orders",
                f"{user}: counted {_int(held.get(user))}, holds {count}",
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
    for row in diffs:
        if row["pg_version"] is None:
            missing += 1
            state.missing_count += 1
            if len(state.missing_pg) < EXAMPLES:
                state.missing_pg.append(f"{row['order_id']}: not in PostgreSQL")
        elif row["pg_version"] < row["redis_version"]:
            state.stale_count += 1
            if len(state.stale) < EXAMPLES:
                state.stale.append(
                    f"{row['order_id']}: v{row['pg_version']} in PostgreSQL, "
                    f"v{row['redis_version']} in Redis"
                )
        elif row["pg_version"] > row["redis_version"]:
            state.problem(
                "postgres_ahead",
                "PostgreSQL holds a newer state than Redis (Redis lost a transition)",
                f"{row['order_id']}: v{row['pg_version']} {row['pg_status']} vs "
                f"v{row['redis_version']} {row['redis_status']}",
            )
        else:
            state.problem(
                "state_mismatch",
                "same version, different state",
                f"{row['order_id']}: {row['pg_status']} vs {row['redis_status']}",
            )
    state.matched += len(order_ids) - missing


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
        f"  lag={report.lag} drained={report.drained} checked_orders={report.checked_orders} "
        f"({'deep' if report.deep else 'quick'}, {report.duration_ms} ms)",
    ]
    for v in report.violations:
        lines.append(f"  VIOLATION {v.code} x{v.count}: {v.detail}")
        lines.extend(f"      {example}" for example in v.examples)
    return "\n".join(lines)
