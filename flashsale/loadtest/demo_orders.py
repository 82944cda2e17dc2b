"""The orders-after-the-drop part of the demo: a cart of two drops from two merchants, paid
with coins and the balance through the parent bill in one debit, its two tokens delivered
and read back from the chain, then one buy again.
(The after-sales ticket of a delivered order is in ``demo_aftersales``.)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from flashsale.api.tokens import mint_token
from flashsale.chain.addresses import checksummed
from flashsale.chain.rpc import ChainClient
from flashsale.loadtest.demo_delivery import demo_address

PASSWORD = "demo-cart-123456"
COINS = 1000
BALANCE = 20_000


@dataclass
class OrdersOutcome:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _post(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    want: int,
    *,
    method: str = "POST",
    **kw: Any,
) -> dict[str, Any]:
    answer = await client.request(method, path, headers=headers, **kw)
    if answer.status_code != want:
        raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text[:200]}")
    body: dict[str, Any] = answer.json() if answer.content else {}
    return body


async def _confirmed(
    client: httpx.AsyncClient, me: dict[str, str], orders: list[dict[str, Any]], wait_s: float
) -> dict[str, dict[str, Any]]:
    """Each order's delivery once all are confirmed (or as they stand after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {
            o["order_id"]: (await client.get(f"/v1/orders/{o['order_id']}", headers=me)).json()
            for o in orders
        }
        seen = {i: body.get("delivery") or {} for i, body in found.items()}
        if all(d.get("status") == "confirmed" for d in seen.values()):
            return seen
        if time.monotonic() > deadline:
            return seen
        await asyncio.sleep(1.0)


async def cart_on_chain(
    client: httpx.AsyncClient,
    chain_url: str,
    buyer: str,
    me: dict[str, str],
    orders: list[dict[str, Any]],
    outcome: OrdersOutcome,
    wait_s: float = 120.0,
) -> None:
    """The cart's tokens, minted to the buyer's address, read back from the chain."""
    deliveries = await _confirmed(client, me, orders, wait_s)
    late = [i for i, d in deliveries.items() if d.get("status") != "confirmed"]
    if late:
        outcome.problems.append(f"{len(late)} cart deliveries not confirmed after {wait_s:.0f} s")
        return
    address = checksummed(demo_address(buyer))
    read: list[str] = []
    rpc = ChainClient(chain_url)
    try:
        for order in orders:
            sale = (await client.get(f"/v1/sales/{order['sale_id']}")).json()
            contract = (sale.get("chain") or {}).get("contract")
            token = deliveries[order["order_id"]]["token_id"]
            owner = await rpc.owner_of(contract, int(token)) if contract else None
            if owner != address:
                outcome.problems.append(f"cart token {token} of {contract} is owned by {owner}")
            read.append(f"{order['sale_id']} token {token} at {contract}")
    finally:
        await rpc.close()
    outcome.lines.append(
        f"cart tokens read back from the chain, owned by {address}: " + "; ".join(read)
    )


async def cart_story(
    client: httpx.AsyncClient, secret: str, admin: str, chain_url: str | None = None
) -> OrdersOutcome:
    """Two merchants' drops in one cart: coins spread, one debit, merchant bills paid too;
    with ``chain_url``, its tokens are delivered to the buyer and read back from the chain."""
    outcome = OrdersOutcome()
    ops, tag = _auth(admin), secrets.token_hex(3)
    buyer = f"cart-buyer-{tag}"
    me = _auth(mint_token(secret, buyer))
    try:
        drops = []
        for merchant, price in (("studio-a", 9900), ("studio-b", 4900)):
            body = {
                "sale_id": f"{merchant}-{tag}",
                "name": f"{merchant} drop (demo)",
                "serials": {"range": [1, 10]},
                "price_cents": price,
                "per_user_limit": 2,
                "merchant_id": merchant,
            }
            drops.append(await _post(client, "/v1/sales", ops, 201, json=body))
        for kind, amount in (("coins", COINS), ("balance", BALANCE)):
            credit = {"amount_cents": amount, "reason": "demo", "kind": kind}
            key = {"Idempotency-Key": f"demo-{buyer}-{kind}"}
            await _post(client, f"/v1/admin/wallets/{buyer}/credit", ops | key, 200, json=credit)
        password = {"password": PASSWORD}
        await _post(client, "/v1/me/payment-password", me, 204, json=password, method="PUT")
        address = {"address": demo_address(buyer)}
        await _post(client, "/v1/me/chain-address", me, 204, json=address, method="PUT")
        cart = {"items": [{"sale_id": d["sale_id"]} for d in drops], "coins_cents": COINS}
        checkout = await _post(client, "/v1/checkouts", me, 201, json=cart)
        orders, bill = checkout["orders"], checkout["bill"]
        spread = " + ".join(f"{o['coins_cents']:,} ({o['merchant_id']})" for o in orders)
        outcome.lines.append(
            f"cart: {len(orders)} drops of {len(checkout['sub_orders'])} merchants, "
            f"goods {bill['goods_cents']:,} · coins {COINS:,} spread {spread} · "
            f"to pay {bill['to_pay_cents']:,}"
        )
        pay = {"method": "balance", "payment_password": PASSWORD}
        paid = await _post(client, f"/v1/bills/{bill['bill_id']}/payments", me, 201, json=pay)
        merchant_bills = [
            (await client.get(f"/v1/bills/{s['bill']['bill_id']}", headers=me)).json()["status"]
            for s in checkout["sub_orders"]
        ]
        wallet = (await client.get("/v1/me/wallet", headers=me)).json()
        outcome.lines.append(
            f"parent bill paid with one debit of {paid['amount_cents']:,}; merchant bills "
            f"{', '.join(merchant_bills)}; wallet now {wallet['balance_cents']:,} balance, "
            f"{wallet['coins_cents']:,} coins"
        )
        if merchant_bills != ["paid"] * len(merchant_bills) or wallet["coins_cents"] != 0:
            outcome.problems.append("the parent bill did not pay the merchant bills")
        if chain_url is not None:
            await cart_on_chain(client, chain_url, buyer, me, orders, outcome)
        again = await _post(client, f"/v1/orders/{orders[0]['order_id']}/buy-again", me, 201)
        outcome.lines.append(
            f"buy again: a new order {again['order_id']} in {again['sale_id']} "
            f"(serial {again['serial']}), checked as a first purchase"
        )
    except (RuntimeError, httpx.HTTPError, KeyError) as exc:
        outcome.problems.append(f"orders after the drop: {exc}")
    return outcome
