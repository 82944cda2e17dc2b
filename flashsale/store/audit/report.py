"""What the audit answers: its report, each violation with a stable ``code``, and the text form."""

from __future__ import annotations

import msgspec

EXAMPLES = 10  # examples kept per violation


class Violation(msgspec.Struct, kw_only=True):
    code: str
    detail: str
    count: int = 1
    examples: list[str] = msgspec.field(default_factory=list)


def violation(
    code: str, detail: str, count: int = 1, examples: list[str] | None = None
) -> Violation:
    """A violation with at most ``EXAMPLES`` examples."""
    return Violation(code=code, detail=detail, count=count, examples=(examples or [])[:EXAMPLES])


class RedisCounts(msgspec.Struct, kw_only=True):
    total: int = 0
    drawn: int = 0
    reserved: int = 0
    sold: int = 0
    available: int = 0
    returned: int = 0
    kept: int = 0  # refunded after delivery: the token stays with its buyer, still sold
    orders: int = 0  # orders found through the buyers (deep audit only)
    pending: int = 0
    paid: int = 0  # paid, delivered or refund_pending: what ``sold`` counts besides ``kept``


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
