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
from dataclasses import dataclass, field
from typing import Any

import httpx

LIVE = frozenset({"pending_payment", "paid", "delivered"})


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
        live = [o for o in self.sold if statuses.get(o["order_id"]) in LIVE]
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


async def burst(
    client: httpx.AsyncClient,
    sale_id: str,
    tokens: dict[str, str],
    attempts: int,
    *,
    seed: int = 1,
) -> BurstResult:
    """Fire ``attempts`` purchases at once from the buyers in ``tokens``."""
    rng = random.Random(seed)
    buyers = list(tokens)
    plan = buyers + [rng.choice(buyers) for _ in range(attempts - len(buyers))]
    rng.shuffle(plan)
    result = BurstResult(attempts=len(plan))

    async def one(buyer: str) -> None:
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
