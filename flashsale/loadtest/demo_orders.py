"""The orders-after-the-drop part of the demo: a cart of two drops from two merchants, paid
with coins and the balance through the parent bill in one debit, then one buy again.
(The after-sales ticket of a delivered order is in ``demo_aftersales``.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from flashsale.api.tokens import mint_token

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


async def cart_story(client: httpx.AsyncClient, secret: str, admin: str) -> OrdersOutcome:
    """Two merchants' drops in one cart: coins spread, one debit, merchant bills paid too."""
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
        again = await _post(client, f"/v1/orders/{orders[0]['order_id']}/buy-again", me, 201)
        outcome.lines.append(
            f"buy again: a new order {again['order_id']} in {again['sale_id']} "
            f"(serial {again['serial']}), checked as a first purchase"
        )
    except (RuntimeError, httpx.HTTPError, KeyError) as exc:
        outcome.problems.append(f"orders after the drop: {exc}")
    return outcome
