"""An admin credit's Idempotency-Key binds the whole credit, the ledger (kind) included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .conftest import ADMIN, Client, wallet

User = Callable[[str], tuple[str, dict[str, str]]]


async def test_one_key_credits_one_ledger_once(client: Client, user: User) -> None:
    buyer, headers = user("one-key")
    path = f"/v1/admin/wallets/{buyer}/credit"
    keyed = {**ADMIN, "Idempotency-Key": f"{buyer}-promo"}
    body = {"amount_cents": 700, "reason": "promo", "kind": "balance"}
    for _ in range(2):  # a retry after a lost answer credits once
        again = await client.post(path, json=body, headers=keyed)
        assert again.status_code == 200, again.text
    other = await client.post(path, json={**body, "kind": "coins"}, headers=keyed)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    mine = await wallet(client, headers)
    assert (mine["balance_cents"], mine["coins_cents"]) == (700, 0)


async def test_one_key_raced_for_both_ledgers_credits_one(client: Client, user: User) -> None:
    buyer, headers = user("raced-key")
    path = f"/v1/admin/wallets/{buyer}/credit"
    keyed = {**ADMIN, "Idempotency-Key": f"{buyer}-race"}
    answers = await asyncio.gather(
        *(
            client.post(
                path, json={"amount_cents": 500, "reason": "race", "kind": kind}, headers=keyed
            )
            for kind in ("balance", "coins", "balance", "coins")
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 422, 422], [a.text for a in answers]
    mine = await wallet(client, headers)
    assert sorted((mine["balance_cents"], mine["coins_cents"])) == [0, 500]
