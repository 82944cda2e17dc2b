"""A burst of concurrent purchases over HTTP, and what the clients saw.

Used by the demo; the client-side checks (no serial sold twice, no buyer over
the limit) are the same ones the load-test verdict joins with the server's audit.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from flashsale.engine.statuses import HOLDS_SERIAL


@dataclass
class BurstResult:
    attempts: int = 0
    sold: list[dict[str, Any]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]

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


async def burst(
    client: httpx.AsyncClient,
    sale_id: str,
    tokens: dict[str, str],
    attempts: int,
    *,
    seed: int = 1,
    on_answer: Callable[[], None] | None = None,
) -> BurstResult:
    """Fire ``attempts`` purchases at once from the buyers in ``tokens``; ``on_answer``
    is called as each one is answered (a progress bar)."""
    rng = random.Random(seed)
    buyers = list(tokens)
    plan = buyers + [rng.choice(buyers) for _ in range(attempts - len(buyers))]
    rng.shuffle(plan)
    result = BurstResult(attempts=len(plan))

    async def one(buyer: str) -> None:
        try:
            await attempt(buyer)
        finally:
            if on_answer is not None:
                on_answer()

    async def attempt(buyer: str) -> None:
        started = time.perf_counter()
        try:
            response = await client.post(
                f"/v1/sales/{sale_id}/purchase",
                json={},
                headers={"Authorization": f"Bearer {tokens[buyer]}"},
            )
        except httpx.HTTPError as exc:
            result.refused[f"transport:{type(exc).__name__}"] += 1
            return
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        body = response.json()
        if response.status_code in (200, 201):
            body["_buyer"] = buyer
            result.sold.append(body)
        else:
            result.refused[body.get("code", str(response.status_code))] += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(buyer) for buyer in plan))
    result.seconds = time.perf_counter() - started
    return result
