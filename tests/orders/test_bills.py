"""Bills over the real app: parent and merchant bills, one debit, coins, races, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.payments.audit import money_audit
from flashsale.payments.service import PaymentService
from tests.api.helpers import problem

from .conftest import PASSWORD, Client, credit, place, set_password, wallet

User = Callable[[str], tuple[str, dict[str, str]]]
BALANCE = {"method": "balance", "payment_password": PASSWORD}


async def _two_merchant_checkout(
    client: Client, make_sale: Any, user: User, name: str, *, coins: int = 0, balance: int = 10_000
) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    a = await make_sale(merchant_id="shop-a", price_cents=1000)
    b = await make_sale(merchant_id="shop-b", price_cents=2000)
    buyer, headers = user(name)
    if coins:
        await credit(client, buyer, coins, kind="coins")
    if balance:
        await credit(client, buyer, balance)
    await set_password(client, headers)
    body = {"items": [{"sale_id": a["sale_id"]}, {"sale_id": b["sale_id"]}], "coins_cents": coins}
    return await place(client, headers, body), headers, [a, b]


async def _statuses(client: Client, headers: dict[str, str], out: dict[str, Any]) -> list[str]:
    return [
        (await client.get(f"/v1/orders/{o['order_id']}", headers=headers)).json()["status"]
        for o in out["orders"]
    ]


async def _bill(client: Client, headers: dict[str, str], bill: dict[str, Any]) -> dict[str, Any]:
    r = await client.get(f"/v1/bills/{bill['bill_id']}", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_the_parent_bill_pays_every_order_with_one_debit(
    client: Client, make_sale: Any, user: User, pool: asyncpg.Pool, engine: Engine
) -> None:
    out, headers, sales = await _two_merchant_checkout(client, make_sale, user, "parent", coins=300)
    parent = out["bill"]
    assert parent["to_pay_cents"] == 2700
    r = await client.post(f"/v1/bills/{parent['bill_id']}/payments", json=BALANCE, headers=headers)
    assert r.status_code == 201, r.text
    paid = r.json()
    assert paid["bill_id"] == parent["bill_id"] and paid["status"] == "succeeded"
    assert paid["amount_cents"] == 2700 and paid["method"] == "balance"
    assert await _statuses(client, headers, out) == ["paid", "paid"]
    mine = await wallet(client, headers)
    assert mine["balance_cents"] == 10_000 - 2700
    debits = [e for e in mine["entries"] if e["kind"] == "debit"]
    assert [e["amount_cents"] for e in debits] == [-2700]  # one debit for the whole bill
    assert (await _bill(client, headers, parent))["status"] == "paid"
    for sub in out["sub_orders"]:
        assert (await _bill(client, headers, sub["bill"]))["status"] == "paid"
    problem(
        await client.post(f"/v1/bills/{parent['bill_id']}/payments", json=BALANCE, headers=headers),
        409,
        "bill_not_payable",
    )
    for sale in sales:  # each order's payment is its price less its coins
        audit = await money_audit(pool, sale["sale_id"], engine)
        assert audit.ok, audit.violations


async def test_paying_merchant_by_merchant_closes_the_parent(
    client: Client, make_sale: Any, user: User
) -> None:
    out, headers, _ = await _two_merchant_checkout(client, make_sale, user, "merchants")
    first, second = (sub["bill"] for sub in out["sub_orders"])
    r = await client.post(f"/v1/bills/{first['bill_id']}/payments", json=BALANCE, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["order_ids"] == first["order_ids"]
    assert await _statuses(client, headers, out) == ["paid", "pending_payment"]
    assert (await _bill(client, headers, out["bill"]))["status"] == "closed"
    problem(
        await client.post(
            f"/v1/bills/{out['bill']['bill_id']}/payments", json=BALANCE, headers=headers
        ),
        409,
        "bill_not_payable",
    )
    r = await client.post(f"/v1/bills/{second['bill_id']}/payments", json=BALANCE, headers=headers)
    assert r.status_code == 201, r.text
    assert await _statuses(client, headers, out) == ["paid", "paid"]
    assert (await wallet(client, headers))["balance_cents"] == 10_000 - 3000


async def test_the_parent_and_a_merchant_bill_paid_at_once_one_wins(
    client: Client, make_sale: Any, user: User
) -> None:
    out, headers, _ = await _two_merchant_checkout(client, make_sale, user, "race")
    parent, merchant = out["bill"], out["sub_orders"][0]["bill"]
    answers = await asyncio.gather(
        *(
            client.post(f"/v1/bills/{b['bill_id']}/payments", json=BALANCE, headers=headers)
            for b in (parent, merchant, parent, merchant)
        )
    )
    won = [r for r in answers if r.status_code == 201]
    assert len(won) == 1, [r.text for r in answers]
    for r in answers:
        if r.status_code != 201:
            problem(r, 409, "bill_not_payable")
    spent = 10_000 - (await wallet(client, headers))["balance_cents"]
    assert spent == won[0].json()["amount_cents"]


async def test_coins_covering_all_need_balance_and_the_password(
    client: Client, make_sale: Any, user: User
) -> None:
    out, headers, _ = await _two_merchant_checkout(
        client, make_sale, user, "allcoins", coins=3000, balance=0
    )
    bill = out["bill"]
    assert bill["to_pay_cents"] == 0
    path = f"/v1/bills/{bill['bill_id']}/payments"
    provider = {"method": "provider", "provider": "sim"}
    problem(await client.post(path, json=provider, headers=headers), 409, "balance_required")
    wrong = {"method": "balance", "payment_password": "not-the-one"}
    problem(await client.post(path, json=wrong, headers=headers), 403, "payment_password_wrong")
    r = await client.post(path, json=BALANCE, headers=headers)
    assert r.status_code == 201 and r.json()["amount_cents"] == 0, r.text
    assert await _statuses(client, headers, out) == ["paid", "paid"]


async def test_refusals_change_nothing(
    client: Client, make_sale: Any, user: User, service: PaymentService
) -> None:
    out, headers, sales = await _two_merchant_checkout(
        client, make_sale, user, "refused", balance=2999
    )
    path = f"/v1/bills/{out['bill']['bill_id']}/payments"
    # balance below the bill: refused (a provider only)
    problem(await client.post(path, json=BALANCE, headers=headers), 409, "insufficient_balance")
    assert (await wallet(client, headers))["balance_cents"] == 2999
    assert await _statuses(client, headers, out) == ["pending_payment", "pending_payment"]
    assert (await _bill(client, headers, out["bill"]))["status"] == "open"
    # someone else's bill, a bad id: not found
    _, stranger = user("stranger")
    problem(
        await client.get(f"/v1/bills/{out['bill']['bill_id']}", headers=stranger),
        404,
        "bill_not_found",
    )
    problem(await client.post(path, json=BALANCE, headers=stranger), 404, "bill_not_found")
    problem(await client.get("/v1/bills/nope", headers=headers), 404, "bill_not_found")
    # an order of a checkout is paid through its bill, never alone
    order_id = out["orders"][0]["order_id"]
    problem(
        await client.post(f"/v1/orders/{order_id}/payments", json=BALANCE, headers=headers),
        409,
        "order_not_payable",
    )
    # a delisted item: its orders are cancelled, so its bills can no longer be paid
    async for _ in service.invalidate_pending_orders(sales[1]["sale_id"], "sale delisted"):
        pass
    await credit(client, user("refused")[0], 1)
    problem(await client.post(path, json=BALANCE, headers=headers), 409, "bill_not_payable")
    assert (await _bill(client, headers, out["bill"]))["status"] == "closed"
    assert (await wallet(client, headers))["balance_cents"] == 3000


async def test_a_changed_item_blocks_paying_its_bill(
    client: Client, make_sale: Any, user: User, engine: Engine
) -> None:
    out, headers, sales = await _two_merchant_checkout(client, make_sale, user, "changed")
    await engine.redis.hset(engine.keys(sales[0]["sale_id"]).meta, "price_cents", 1500)
    merchant = out["sub_orders"][0]["bill"]
    r = await client.post(
        f"/v1/bills/{merchant['bill_id']}/payments", json=BALANCE, headers=headers
    )
    problem(r, 409, "bill_not_payable")
    assert await _statuses(client, headers, out) == ["cancelled", "pending_payment"]
    assert (await _bill(client, headers, merchant))["status"] == "closed"
    assert (await wallet(client, headers))["balance_cents"] == 10_000
