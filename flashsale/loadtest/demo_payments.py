"""The payment part of the demo: provider payments with faults, balance payments, expiry.

Of the sold orders, 50 % pay through the provider simulator while it drops 30 %
of its callbacks and duplicates 20 % (the server must find the lost ones by
active queries), 5 % pay from their wallet with a payment password, a few are
paid twice (each extra payment must become a refund under review), and the
rest are left to expire so their serials return to the pool.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from flashsale.loadtest.burst import BurstResult

# the demo's clients: a request queued for a pooled connection waits its turn (pool=None),
# hundreds of payments at once on 2 busy cores are slow, not failed
CLIENT_TIMEOUT = httpx.Timeout(60, pool=None)
# an idle connection is dropped well before the servers' keep-alive (uvicorn: 5 s, httpx's
# own default too): reused at the moment the server closes it, a request fails ReadError
# (make demo stopped so once, answers taking ~4 s on 2 busy cores)
KEEPALIVE_EXPIRY_S = 2.0


def client_limits(connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )


PASSWORD = "demo-pay-123456"
SHOWN_PROBLEMS = 5
PATIENCE = 6  # tries of one call answered 503 (each after its Retry-After)


@dataclass
class PaymentOutcome:
    started: Counter[str] = field(default_factory=Counter)
    final: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, str] = field(default_factory=dict)  # order_id -> status at the end
    refunds_pending: int = 0
    paid_twice: int = 0  # orders whose two provider trades were both paid
    retried: int = 0  # calls answered 503 and sent again, as a buyer's app would
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> list[str]:
        started = " · ".join(f"{k} {v:,}" for k, v in sorted(self.started.items()))
        final = " · ".join(f"{k} {v:,}" for k, v in sorted(self.final.items()))
        lines = [
            f"payments started: {started}",
            f"orders now: {final}",
            f"paid twice: {self.paid_twice} · refunds waiting for an operator: "
            f"{self.refunds_pending} · calls retried after a 503: {self.retried}",
        ]
        lines += [f"PROBLEM: {p}" for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"... and {len(self.problems) - SHOWN_PROBLEMS} more problems")
        return lines


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _patient(
    outcome: PaymentOutcome, call: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """``call`` until it is not a 503, at most PATIENCE times: a 503 other than
    ``outcome_unknown`` means nothing happened (docs/design.md), so a buyer's app sends
    the same request again after ``Retry-After``, and so does the demo."""
    for _ in range(PATIENCE - 1):
        answer = await call()
        if answer.status_code != 503:
            return answer
        outcome.retried += 1
        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
    return await call()


async def pay_some(
    client: httpx.AsyncClient,
    paysim_url: str,
    result: BurstResult,
    tokens: dict[str, str],
    admin: str,
    *,
    seed: int = 3,
    on_wait: Callable[[int, int], None] | None = None,
) -> PaymentOutcome:
    """Pay some orders, then wait (at most 150 s) until none is pending; ``on_wait(settled,
    total)`` is told how many orders are no longer pending as the wait goes on."""
    outcome = PaymentOutcome()
    rng = random.Random(seed)
    orders = list(result.sold)
    rng.shuffle(orders)
    by_provider = orders[: len(orders) * 5 // 10]
    # few: each balance buyer sets a payment password and pays with it, two argon2
    # hashes (64 MiB, 3 passes) that cost ~0.15 s of CPU each on purpose
    by_balance = orders[len(by_provider) : len(by_provider) + len(orders) // 20]
    twice = by_provider[:5]
    async with httpx.AsyncClient(
        base_url=paysim_url, limits=client_limits(100), timeout=CLIENT_TIMEOUT
    ) as paysim:
        (
            await paysim.put("/faults", json={"drop_rate": 0.3, "duplicate_rate": 0.2})
        ).raise_for_status()

        async def provider(order: dict[str, Any], times: int = 1) -> None:
            """Start ``times`` attempts, then pay them all: two open trades both paid
            is the duplicate payment that must end as a refund under review."""
            token = tokens[order["_buyer"]]
            pay_urls: list[str] = []
            for _ in range(times):
                started = await _patient(
                    outcome,
                    lambda: client.post(
                        f"/v1/orders/{order['order_id']}/payments",
                        json={"method": "provider", "provider": "sim"},
                        headers=_auth(token),
                    ),
                )
                if started.status_code != 201:
                    outcome.problems.append(f"provider payment refused: {started.text}")
                    return
                outcome.started["provider"] += 1
                pay_urls.append(started.json()["pay_url"])
            succeeded = 0
            for paid in await asyncio.gather(*(paysim.post(url) for url in pay_urls)):
                if paid.status_code == 409:  # closed because another attempt won first
                    outcome.started["provider trade closed before paying"] += 1
                else:
                    paid.raise_for_status()
                    succeeded += 1
            outcome.paid_twice += succeeded > 1

        async def balance(order: dict[str, Any]) -> None:
            buyer, token = order["_buyer"], tokens[order["_buyer"]]
            credited = await _patient(
                outcome,
                lambda: client.post(
                    f"/v1/admin/wallets/{buyer}/credit",
                    json={"amount_cents": order["price_cents"], "reason": "demo top-up"},
                    headers=_auth(admin) | {"Idempotency-Key": f"demo-top-up-{order['order_id']}"},
                ),
            )
            password = await _patient(
                outcome,
                lambda: client.put(
                    "/v1/me/payment-password", json={"password": PASSWORD}, headers=_auth(token)
                ),
            )
            for step, answer in (("top-up", credited), ("payment password", password)):
                if not answer.is_success:
                    outcome.problems.append(f"{step} refused: {answer.text}")
                    return
            paid = await _patient(
                outcome,
                lambda: client.post(
                    f"/v1/orders/{order['order_id']}/payments",
                    json={"method": "balance", "payment_password": PASSWORD},
                    headers=_auth(token),
                ),
            )
            if paid.status_code != 201:
                outcome.problems.append(f"balance payment refused: {paid.text}")
                return
            outcome.started["balance"] += 1

        await asyncio.gather(
            *(provider(o, 2 if o in twice else 1) for o in by_provider),
            *(balance(o) for o in by_balance),
        )
        expected_paid = {o["order_id"] for o in by_provider + by_balance}
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            statuses = await _statuses(client, orders, tokens)
            pending = sum(1 for s in statuses.values() if s == "pending_payment")
            if on_wait is not None:
                on_wait(len(orders) - pending, len(orders))
            if not pending:
                break
            await asyncio.sleep(1)
        outcome.statuses = statuses
        outcome.final = Counter(statuses.values())
        for order_id in expected_paid:
            if statuses.get(order_id) != "paid":
                outcome.problems.append(f"{order_id} was paid but is {statuses.get(order_id)}")
        refunds = await client.get(
            "/v1/admin/refunds", params={"status": "pending"}, headers=_auth(admin)
        )
        outcome.refunds_pending = len(refunds.json()) if refunds.status_code == 200 else -1
        if outcome.refunds_pending < outcome.paid_twice:
            outcome.problems.append(
                f"{outcome.paid_twice} orders were paid twice, "
                f"but {outcome.refunds_pending} refunds are pending"
            )
    return outcome


async def _statuses(
    client: httpx.AsyncClient, orders: list[dict[str, Any]], tokens: dict[str, str]
) -> dict[str, str]:
    async def one(order: dict[str, Any]) -> tuple[str, str]:
        response = await client.get(
            f"/v1/orders/{order['order_id']}", headers=_auth(tokens[order["_buyer"]])
        )
        return order["order_id"], response.json().get("status", "?")

    return dict(await asyncio.gather(*(one(o) for o in orders)))
