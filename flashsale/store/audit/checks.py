"""The audit's checks of one sale, in the order they run: each returns its violations.

A check judges the snapshot (snapshot.py); the few that need more re-read
Redis or PostgreSQL themselves, at the moment they run. Checks that join
readings from different moments (Redis order totals against the counters,
PostgreSQL counts against Redis, the pool against PostgreSQL) judge only a
``settled`` sale and, for PostgreSQL, a ``drained`` stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from flashsale.engine import statuses
from flashsale.engine.codec import text
from flashsale.store.audit.report import Violation, violation
from flashsale.store.audit.snapshot import Snapshot
from flashsale.store.queries import q

Check = Callable[[Snapshot], Awaitable[list[Violation]]]


async def check_counters(s: Snapshot) -> list[Violation]:
    """``oversold``, ``pool_mismatch``: every counter >= 0, and the pool agrees with them."""
    if not s.in_redis:
        return []
    c = s.counts
    found: list[Violation] = []
    if min(c.reserved, c.sold, c.available, c.drawn) < 0:
        found.append(
            violation(
                "oversold",
                f"negative counter: reserved={c.reserved} "
                f"sold={c.sold} available={c.available} drawn={c.drawn}",
            )
        )
    if c.drawn > c.total:
        found.append(violation("pool_mismatch", f"drawn {c.drawn} > total {c.total}"))
    if c.drawn - c.returned != c.reserved + c.sold:
        found.append(
            violation(
                "pool_mismatch",
                f"drawn {c.drawn} - returned {c.returned} != reserved "
                f"{c.reserved} + sold {c.sold}: a serial is taken by no order "
                "or held twice",
            )
        )
    return found


async def check_serials_held_twice(s: Snapshot) -> list[Violation]:
    """``serial_held_twice``: two live orders on one serial in PostgreSQL (invariant 2)."""
    if not s.held_twice:
        return []
    return [
        violation(
            "serial_held_twice",
            "a serial is held by two live orders in PostgreSQL",
            len(s.held_twice),
            [f"{r['serial']}: {', '.join(r['orders'])}" for r in s.held_twice],
        )
    ]


async def check_sale_exists(s: Snapshot) -> list[Violation]:
    """``sale_not_found``, ``sale_missing_in_redis``."""
    if s.in_redis:
        return []
    if s.sale_row is None:
        return [violation("sale_not_found", f"no sale {s.sale_id} in Redis nor in PostgreSQL")]
    return [violation("sale_missing_in_redis", f"sale {s.sale_id} is in PostgreSQL, not in Redis")]


async def check_orders(s: Snapshot) -> list[Violation]:
    """What the per-order checks found while the orders were scanned (orders.py).

    ``counted_without_order``, ``buyer_count_mismatch``, ``buyer_over_limit``
    (in Redis), ``postgres_ahead``, ``state_mismatch``.
    """
    return s.scan.violations


async def check_persisted(s: Snapshot) -> list[Violation]:
    """``not_persisted``: with the write-behind drained, every order is in PostgreSQL.

    Only orders compared twice, the second time with the stream drained, count:
    before the drain, the gap is ``lag``.
    """
    if s.still_behind is None or not (s.drained and s.lag_count):
        return []
    return [
        violation(
            "not_persisted",
            "orders acknowledged by Redis are missing or stale in PostgreSQL with "
            "the write-behind drained",
            s.lag_count,
            s.still_behind,
        )
    ]


async def check_missing_in_redis(s: Snapshot) -> list[Violation]:
    """``missing_in_redis``: PostgreSQL has orders Redis does not (Redis lost writes)."""
    if not (s.deep and s.in_redis and s.persisted > s.scan.matched):
        return []
    return [
        violation(
            "missing_in_redis",
            "orders in PostgreSQL that Redis does not have (Redis lost writes)",
            s.persisted - s.scan.matched,
        )
    ]


async def check_limits(s: Snapshot) -> list[Violation]:
    """``buyer_over_limit``, ``ip_over_limit`` in PostgreSQL (invariant 3), once drained."""
    if not s.drained or s.max_limit is None:
        return []
    row = s.sale_row
    async with s.pool.acquire() as conn:
        over = await conn.fetch(q("audit_buyers_over_limit"), s.sale_id, s.max_limit)
        over_ip: list[Any] = []
        if row and row["ip_limit_always_on"] and row["max_per_ip_limit"]:
            # exact on a bucketed drop too: the address's IP home counts it for every bucket
            # (docs/design.md, "Bucketed drops")
            ip_limit = int(row["max_per_ip_limit"])
            over_ip = await conn.fetch(q("audit_ips_over_limit"), s.sale_id, ip_limit)
    found: list[Violation] = []
    if over:
        found.append(
            violation(
                "buyer_over_limit",
                f"buyers with more than {s.max_limit} live orders in PostgreSQL",
                len(over),
                [f"{r['user_id']}: {r['n']}" for r in over],
            )
        )
    if over_ip:
        found.append(
            violation(
                "ip_over_limit",
                "addresses over the per-IP limit in PostgreSQL",
                len(over_ip),
                [f"{r['ip']}: {r['n']}" for r in over_ip],
            )
        )
    return found


async def check_orders_match_counters(s: Snapshot) -> list[Violation]:
    """``counter_mismatch``: Redis's orders (pending; paid and kin) are its counters."""
    if not (s.deep and s.settled):
        return []
    c, scan = s.counts, s.scan
    if (scan.pending, scan.paid + scan.kept, scan.kept) == (c.reserved, c.sold, c.kept):
        return []
    return [
        violation(
            "counter_mismatch",
            f"orders in Redis: {scan.pending} pending, {scan.paid} "
            f"paid/delivered/refund_pending, {scan.kept} refunded after delivery; "
            f"counters: reserved {c.reserved}, sold {c.sold}, kept {c.kept}",
        )
    ]


async def check_returned_pool(s: Snapshot) -> list[Violation]:
    """``pool_mismatch``, ``serial_held_twice``: released serials waiting in the pool are
    each there once and, once drained, held by no live order in PostgreSQL."""
    if not (s.deep and s.settled):
        return []
    found: list[Violation] = []
    serials = [
        text(v).partition(":")[2]
        for slot in s.slots
        for v in await s.redis.lrange(slot.returned, 0, -1)
    ]
    if len(set(serials)) != len(serials):
        found.append(violation("pool_mismatch", "a released serial is twice in the pool"))
    if not s.drained:
        return found
    async with s.pool.acquire() as conn:
        for start in range(0, len(serials), s.chunk):
            held = await conn.fetch(
                q("audit_pool_serials_held"), s.sale_id, serials[start : start + s.chunk]
            )
            # a serial taken from the pool and persisted since the pool was read is no
            # violation: only a sale with no event since then is judged
            if held and await s.still_settled():
                found.append(
                    violation(
                        "serial_held_twice",
                        "a serial waits in the pool while a live order holds it",
                        len(held),
                        [f"{r['serial']}: {r['order_id']}" for r in held],
                    )
                )
    return found


async def check_postgres_matches_counters(s: Snapshot) -> list[Violation]:
    """``counter_mismatch``: once drained, PostgreSQL's order counts are Redis's counters."""
    if not (s.deep and s.settled and s.drained and s.lag_count == 0):
        return []
    async with s.pool.acquire() as conn:  # read again: it may have caught up since
        now = {
            r["status"]: int(r["n"]) for r in await conn.fetch(q("audit_status_counts"), s.sale_id)
        }
        pg_kept = int(await conn.fetchval(q("audit_kept_count"), s.sale_id))
    if not await s.still_settled():
        # an event since the counters were read may be in PostgreSQL already: the two
        # readings are of different moments (the next audit compares them again)
        return []
    pg_pending = now.get("pending_payment", 0)
    pg_sold = sum(now.get(status, 0) for status in statuses.SOLD)
    c = s.counts
    if (pg_pending, pg_sold + pg_kept, pg_kept) == (c.reserved, c.sold, c.kept):
        return []
    return [
        violation(
            "counter_mismatch",
            f"PostgreSQL: {pg_pending} pending, {pg_sold} paid/delivered/"
            f"refund_pending, {pg_kept} refunded after delivery; Redis: "
            f"reserved {c.reserved}, sold {c.sold}, kept {c.kept}",
        )
    ]


# The order is the report's order of violations and of the re-reads.
CHECKS: tuple[Check, ...] = (
    check_counters,
    check_serials_held_twice,
    check_sale_exists,
    check_orders,
    check_persisted,
    check_missing_in_redis,
    check_limits,
    check_orders_match_counters,
    check_returned_pool,
    check_postgres_matches_counters,
)
