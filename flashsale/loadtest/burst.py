"""What a burst's clients were told, and the client-side checks on it.

The demo's burst runs through the load test's generator (demo_burst.py: locust,
its records in a ``Seen``); ``BurstResult`` is its sold orders as the demo's later
steps use them. The checks (no serial held twice, no buyer over the limit) are the
same ones the load-test verdict joins with the server's audit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flashsale.engine.statuses import HOLDS_SERIAL
from flashsale.loadtest.seen import Seen


@dataclass
class BurstResult:
    attempts: int = 0
    # each order answered as new: order_id, serial, price_cents, the buyer under "_buyer"
    sold: list[dict[str, Any]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_seen(cls, seen: Seen, price_cents: int = 0) -> BurstResult:
        """The orders the clients were given as new (a replay is not a sale), in the order
        their answers arrived; ``price_cents``: the sale's price."""
        sold = [
            {
                "order_id": b.order_id,
                "serial": b.serial,
                "_buyer": b.buyer,
                "price_cents": price_cents,
            }
            for b in sorted(seen.bought, key=lambda b: b.received_at)
            if not b.replayed
        ]
        return cls(attempts=seen.attempts, sold=sold, refused=Counter(seen.refused))

    def violations(self, per_user_limit: int, statuses: dict[str, str]) -> list[str]:
        """What the clients themselves saw go wrong, whatever the server says.

        ``statuses`` is each sold order's state read back at the end: a serial
        whose first order expired is rightly sold again, so only orders still
        live count (live = pending_payment, paid, delivered).
        """
        live = [o for o in self.sold if statuses.get(o["order_id"]) in HOLDS_SERIAL]
        found: list[str] = []
        serials = Counter(str(order["serial"]) for order in live)
        found += [f"serial {s} held by {n} live orders" for s, n in serials.items() if n > 1]
        buyers = Counter(order["_buyer"] for order in live)
        found += [
            f"buyer {b} holds {n} live orders (limit {per_user_limit})"
            for b, n in buyers.items()
            if n > per_user_limit
        ]
        ids = Counter(order["order_id"] for order in self.sold)
        found += [f"order {i} was answered as new {n} times" for i, n in ids.items() if n > 1]
        return found


@dataclass(frozen=True)
class Holding:
    """An order a client was told it holds: from ``acquired`` (its answer arrived) until
    ``released`` at the earliest (a cancel was sent, or its payment deadline passed);
    ``None``: never released as far as the client knows."""

    order_id: str
    serial: str
    buyer: str
    ip: str = ""
    acquired: float = 0.0
    released: float | None = None


def _max_overlap(group: list[Holding], skew_s: float) -> int:
    """The most orders of ``group`` certainly live at one moment: order B certainly
    overlaps an earlier A when B's answer arrived before A can have been released."""
    group = sorted(group, key=lambda h: h.acquired)
    worst = 1 if group else 0
    for i, later in enumerate(group):
        live = sum(
            1
            for earlier in group[:i]
            if earlier.released is None or later.acquired + skew_s < earlier.released
        )
        worst = max(worst, live + 1)
    return worst


def holding_violations(
    holdings: list[Holding],
    per_user_limit: int,
    per_ip_limit: int | None = None,
    *,
    skew_s: float = 0.0,
) -> list[str]:
    """Client-side invariants: no serial held by two orders at once, no buyer (or client
    address) over its limit. Orders are distinct by id (a replay is the same order);
    ``skew_s`` tolerates a server clock ahead of the client's."""
    distinct = list({h.order_id: h for h in holdings}.values())
    found: list[str] = []

    def groups(key: str) -> dict[str, list[Holding]]:
        out: dict[str, list[Holding]] = {}
        for h in distinct:
            out.setdefault(getattr(h, key), []).append(h)
        return out

    for serial, group in groups("serial").items():
        if len(group) > 1 and (n := _max_overlap(group, skew_s)) > 1:
            found.append(f"serial {serial} sold to {n} orders")
    for buyer, group in groups("buyer").items():
        if len(group) > per_user_limit and (n := _max_overlap(group, skew_s)) > per_user_limit:
            found.append(f"buyer {buyer} holds {n} orders (limit {per_user_limit})")
    if per_ip_limit is not None:
        for ip, group in groups("ip").items():
            if not ip or len(group) <= per_ip_limit:
                continue
            if (n := _max_overlap(group, skew_s)) > per_ip_limit:
                found.append(f"address {ip} holds {n} orders (limit {per_ip_limit})")
    return found
