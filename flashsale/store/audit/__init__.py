"""``flashsale audit SALE``: every invariant across Redis and PostgreSQL.

The invariants are listed in docs/design.md#invariants.

Cheap on a 1,000,000-order sale: PostgreSQL answers with server-side
aggregates (counts and at most a few examples per check), and Redis is read in
bounded chunks (the buyers hash gives every order id, since order ids are a
function of (sale, buyer, n)); each chunk is compared with PostgreSQL by one
query that returns only the differences. Memory stays bounded by the chunk.

Checks (checks.py, each with its stable codes):
- counters: ``sold + reserved + available == total`` with every term >= 0, and
  the pool agrees (``drawn - len(returned) == reserved + sold``), and the
  orders agree (pending == reserved, paid + delivered + refund_pending + kept
  == sold: a cancelled paid order keeps its serial until its refund is decided,
  and an order refunded after delivery keeps it for good, its token minted;
  ``kept`` in the meta == those orders, in Redis and in PostgreSQL);
- invariant 2: no serial held by two live orders (PostgreSQL), and no serial
  waiting in the pool of released serials while a live order holds it;
- invariant 3: no buyer (or address) over the highest limit the sale had
  (an order refunded after delivery counts: its buyer holds the token);
- every buyer counted in Redis has its orders, and its live count matches
  (orders.py, checked chunk by chunk);
- invariant 4: every order Redis acknowledged is in PostgreSQL with the same
  state once the write-behind has drained (before that, the gap is ``lag``),
  and PostgreSQL has no order Redis does not know (Redis lost a write).

Layout: snapshot.py reads the sale, orders.py scans every order, checks.py
judges, report.py holds the answer's shape.
"""

from __future__ import annotations

import time

import asyncpg

from flashsale.store.audit.checks import CHECKS
from flashsale.store.audit.orders import CHUNK
from flashsale.store.audit.report import (
    EXAMPLES,
    AuditReport,
    RedisCounts,
    StreamState,
    Violation,
    render,
)
from flashsale.store.audit.snapshot import read_snapshot
from flashsale.store.streams import AnyRedis

__all__ = [
    "CHUNK",
    "EXAMPLES",
    "AuditReport",
    "RedisCounts",
    "StreamState",
    "Violation",
    "audit_sale",
    "render",
]


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
    snapshot = await read_snapshot(redis, pool, namespace, sale_id, deep=deep, chunk=chunk)
    found: list[Violation] = []
    for check in CHECKS:
        found += await check(snapshot)
    dead_in_redis = int(await redis.xlen(snapshot.keys.persist_dead))
    lag = snapshot.lag
    return AuditReport(
        ok=not found,
        violations=found,
        persisted=snapshot.persisted,
        lag=snapshot.lag_count,
        sale_id=sale_id,
        drained=snapshot.drained,
        settled=snapshot.settled,
        deep=deep,
        checked_orders=snapshot.scan.orders,
        redis=snapshot.counts,
        postgres=snapshot.by_status,
        stream=StreamState(
            pending=lag.pending,
            undelivered=lag.undelivered,
            oldest_age_ms=lag.oldest_age_ms,
            dead_letters=max(snapshot.dead_letters, dead_in_redis),
        ),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
