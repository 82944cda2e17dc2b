"""The demo's delivery on chain: buyers give addresses, the deliverer mints, we read back.

Most paid buyers give an address (in lower case: the API answers in EIP-55);
a few do not, and their orders wait visibly (``awaiting_address``). Every
token minted is read back from the chain: owner = the buyer's address.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from flashsale.chain.addresses import checksummed
from flashsale.chain.rpc import ChainClient

WITHOUT_ADDRESS = 3  # paid buyers who never give one


def demo_address(buyer: str) -> str:
    """A made-up address per buyer (nobody holds its key: a demo only)."""
    return "0x" + hashlib.sha256(buyer.encode()).hexdigest()[:40]


@dataclass
class DeliveryOutcome:
    statuses: Counter[str] = field(default_factory=Counter)
    contract: str | None = None
    checked: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)  # orders read back on chain

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = " · ".join(f"{k} {v:,}" for k, v in sorted(self.statuses.items()))
        lines = [
            f"\ndelivery:   {counts or 'nothing paid'} ({self.seconds:.1f} s)",
            f"  contract    {self.contract or '-'}",
            f"  read back   {self.checked:,} tokens: each owned by its buyer's address",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


async def _deliveries(
    client: httpx.AsyncClient, orders: list[dict[str, Any]], tokens: dict[str, str]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    limit = asyncio.Semaphore(32)

    async def one(order: dict[str, Any]) -> None:
        async with limit:
            auth = {"Authorization": f"Bearer {tokens[order['_buyer']]}"}
            body = (await client.get(f"/v1/orders/{order['order_id']}", headers=auth)).json()
            found[order["order_id"]] = body.get("delivery") or {}

    await asyncio.gather(*(one(o) for o in orders))
    return found


async def deliver_paid(
    client: httpx.AsyncClient,
    chain_url: str,
    sale_id: str,
    sold: list[dict[str, Any]],
    statuses: dict[str, str],
    tokens: dict[str, str],
    *,
    wait_s: float = 180.0,
) -> DeliveryOutcome:
    outcome = DeliveryOutcome()
    began = time.monotonic()
    paid = [o for o in sold if statuses.get(o["order_id"]) == "paid"]
    silent = {o["_buyer"] for o in paid[:WITHOUT_ADDRESS]}
    for buyer in sorted({o["_buyer"] for o in paid} - silent):
        answer = await client.put(
            "/v1/me/chain-address",
            json={"address": demo_address(buyer)},
            headers={"Authorization": f"Bearer {tokens[buyer]}"},
        )
        if answer.status_code != 204:
            outcome.problems.append(f"address of {buyer} refused: {answer.status_code}")
    expected = {o["order_id"]: "awaiting_address" if o["_buyer"] in silent else "confirmed"
                for o in paid}  # fmt: skip
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() - began < wait_s:
        found = await _deliveries(client, paid, tokens)
        if all(found[i].get("status") == want for i, want in expected.items()):
            break
        await asyncio.sleep(1.0)
    outcome.seconds = time.monotonic() - began
    outcome.statuses = Counter(d.get("status", "missing") for d in found.values())
    late = [i for i, want in expected.items() if found.get(i, {}).get("status") != want]
    if late:
        outcome.problems.append(f"{len(late)} deliveries not as expected after {wait_s:.0f} s")
    chain = (await client.get(f"/v1/sales/{sale_id}")).json().get("chain") or {}
    outcome.contract = chain.get("contract")
    if outcome.contract is None:
        if paid:
            outcome.problems.append("the sale's contract is not deployed")
        return outcome
    rpc = ChainClient(chain_url)
    try:
        for order in paid:
            delivery = found.get(order["order_id"], {})
            if delivery.get("status") != "confirmed":
                continue
            owner = await rpc.owner_of(outcome.contract, int(delivery["token_id"]))
            if owner != checksummed(demo_address(order["_buyer"])):
                outcome.problems.append(f"token {delivery['token_id']} is owned by {owner}")
            outcome.checked += 1
            outcome.delivered.append(order)
    finally:
        await rpc.close()
    return outcome


__all__ = ["DeliveryOutcome", "deliver_paid", "demo_address"]
