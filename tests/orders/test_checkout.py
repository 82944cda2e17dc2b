"""POST /v1/checkouts over the real app: all or nothing, split by merchant, coins spread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from flashsale.payments.release import order_released
from tests.api.helpers import problem

from .conftest import Client, credit, sale_counts, wallet

User = Callable[[str], tuple[str, dict[str, str]]]


def money(bill: dict[str, Any]) -> tuple[int, int, int]:
    return bill["goods_cents"], bill["coins_cents"], bill["to_pay_cents"]


async def test_a_cart_of_two_merchants_is_split_with_its_bills_and_coins(
    client: Client, make_sale: Any, user: User
) -> None:
    a = await make_sale(merchant_id="studio-a", price_cents=1000)
    b = await make_sale(merchant_id="studio-b", price_cents=2500)
    buyer, headers = user("split")
    await credit(client, buyer, 700, kind="coins")
    body = {
        "items": [{"sale_id": a["sale_id"]}, {"sale_id": b["sale_id"], "quantity": 2}],
        "coins_cents": 500,
    }
    r = await client.post("/v1/checkouts", json=body, headers=headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "pending_payment"
    orders = out["orders"]
    assert [o["sale_id"] for o in orders] == [a["sale_id"], b["sale_id"], b["sale_id"]]
    assert {o["checkout_id"] for o in orders} == {out["checkout_id"]}
    assert [o["merchant_id"] for o in orders] == ["studio-a", "studio-b", "studio-b"]
    assert [o["coins_cents"] for o in orders] == [
        84,
        208,
        208,
    ]  # 500 over 1000/2500/2500, ties to the first
    for o in orders:
        assert o["status"] == "pending_payment" and o["currency"] == "CNY"
        assert o["to_pay_cents"] == o["price_cents"] - o["coins_cents"]
        assert o["serial"] and o["expires_at"] and o["order_id"]
    parent = out["bill"]
    assert parent["kind"] == "parent" and parent["status"] == "open"
    assert (parent["goods_cents"], parent["coins_cents"], parent["to_pay_cents"]) == (
        6000,
        500,
        5500,
    )
    assert parent["order_ids"] == [o["order_id"] for o in orders]
    subs = {s["merchant_id"]: s for s in out["sub_orders"]}
    assert set(subs) == {"studio-a", "studio-b"}
    bill_b = subs["studio-b"]["bill"]
    assert bill_b["kind"] == "merchant" and bill_b["merchant_id"] == "studio-b"
    assert (bill_b["goods_cents"], bill_b["coins_cents"], bill_b["to_pay_cents"]) == (
        5000,
        416,
        4584,
    )
    assert subs["studio-b"]["order_ids"] == [o["order_id"] for o in orders[1:]]
    assert subs["studio-a"]["bill"]["to_pay_cents"] == 916
    mine = await wallet(client, headers)
    assert mine["coins_cents"] == 200
    moves = [(e["kind"], e["amount_cents"], e["checkout_id"]) for e in mine["coin_entries"]]
    assert moves == [("spend", -500, out["checkout_id"]), ("credit", 700, None)]
    assert (await sale_counts(client, b["sale_id"]))[1] == 2


async def test_a_refused_item_releases_what_the_checkout_got(
    client: Client, make_sale: Any, user: User
) -> None:
    a = await make_sale(serials={"range": [1, 5]})
    scarce = await make_sale(serials={"range": [1, 1]})
    buyer, headers = user("refused")
    await credit(client, buyer, 300, kind="coins")
    _, first_h = user("first")
    assert (
        await client.post(f"/v1/sales/{scarce['sale_id']}/purchase", json={}, headers=first_h)
    ).status_code == 201
    body = {"items": [{"sale_id": a["sale_id"], "quantity": 2}, {"sale_id": scarce["sale_id"]}]}
    r = await client.post("/v1/checkouts", json={**body, "coins_cents": 300}, headers=headers)
    problem(r, 409, "sold_out")
    # released before the answer: nothing held, coins untouched
    assert await sale_counts(client, a["sale_id"]) == (5, 0, 0)
    assert (await wallet(client, headers))["coins_cents"] == 300
    # over the limit: the item's own code
    limited = await make_sale(per_user_limit=1)
    assert (
        await client.post(f"/v1/sales/{limited['sale_id']}/purchase", json={}, headers=headers)
    ).status_code == 201
    r = await client.post(
        "/v1/checkouts",
        json={"items": [{"sale_id": a["sale_id"]}, {"sale_id": limited["sale_id"]}]},
        headers=headers,
    )
    problem(r, 409, "limit_reached")
    assert await sale_counts(client, a["sale_id"]) == (5, 0, 0)


async def test_coins_short_and_bad_carts_change_nothing(
    client: Client, make_sale: Any, user: User
) -> None:
    a = await make_sale()
    usd = await make_sale(currency="USD")
    buyer, headers = user("bad")
    await credit(client, buyer, 100, kind="coins")
    one = [{"sale_id": a["sale_id"]}]
    problem(
        await client.post(
            "/v1/checkouts", json={"items": one, "coins_cents": 101}, headers=headers
        ),
        409,
        "insufficient_coins",
    )
    # more coins than the goods: the sales' prices decide it, so 409, not a bad body
    problem(
        await client.post(
            "/v1/checkouts", json={"items": one, "coins_cents": 1001}, headers=headers
        ),
        409,
        "coins_exceed_goods",
    )
    bad_bodies: list[dict[str, Any]] = [
        {"items": []},
        {"items": [*one, {"sale_id": usd["sale_id"]}]},
        {"items": [*one, *one]},
        {"items": [{"sale_id": a["sale_id"], "quantity": 21}]},
    ]
    for body in bad_bodies:
        r = await client.post("/v1/checkouts", json=body, headers=headers)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["code"] == "validation_error"
    unknown = {"items": [*one, {"sale_id": "no-such-sale"}]}
    problem(
        await client.post("/v1/checkouts", json=unknown, headers=headers), 404, "sale_not_found"
    )
    problem(
        await client.post("/v1/checkouts", json={"items": [{"sale_id": a["sale_id"]}]}),
        401,
        "unauthenticated",
    )
    assert await sale_counts(client, a["sale_id"]) == (10, 0, 0)
    assert await sale_counts(client, usd["sale_id"]) == (10, 0, 0)
    assert (await wallet(client, headers))["coins_cents"] == 100


async def test_an_idempotency_key_replays_the_first_checkout(
    client: Client, make_sale: Any, user: User
) -> None:
    a = await make_sale()
    _, headers = user("idem")
    keyed = {**headers, "Idempotency-Key": "cart-1"}
    body = {"items": [{"sale_id": a["sale_id"], "quantity": 2}]}
    answers = await asyncio.gather(
        *(client.post("/v1/checkouts", json=body, headers=keyed) for _ in range(4))
    )
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 201]
    assert len({r.json()["checkout_id"] for r in answers}) == 1
    assert await sale_counts(client, a["sale_id"]) == (8, 2, 0)
    spaced = await client.post(
        "/v1/checkouts",
        content=b'{ "items" : [ {"sale_id": "%s", "quantity": 2} ] }' % a["sale_id"].encode(),
        headers={**keyed, "content-type": "application/json"},
    )
    assert spaced.status_code == 200 and spaced.json() == answers[0].json()
    bad_key = {**headers, "Idempotency-Key": "no spaces allowed"}
    r = await client.post("/v1/checkouts", json=body, headers=bad_key)
    assert r.status_code == 400 and r.json()["code"] == "validation_error", r.text
    other = {"items": [{"sale_id": a["sale_id"], "quantity": 1}]}
    problem(
        await client.post("/v1/checkouts", json=other, headers=keyed), 422, "idempotency_key_reused"
    )


async def test_concurrent_carts_under_contention_hold_all_or_nothing(
    client: Client, make_sale: Any, user: User
) -> None:
    scarce = await make_sale(serials={"range": [1, 3]})
    plenty = await make_sale(serials={"range": [1, 50]})
    body = {
        "items": [{"sale_id": plenty["sale_id"], "quantity": 2}, {"sale_id": scarce["sale_id"]}]
    }
    buyers = [user(f"race{i}")[1] for i in range(8)]
    answers = await asyncio.gather(
        *(client.post("/v1/checkouts", json=body, headers=h) for h in buyers)
    )
    won = [r for r in answers if r.status_code == 201]
    lost = [r for r in answers if r.status_code != 201]
    assert len(won) == 3
    for r in lost:
        problem(r, 409, "sold_out")
    for r in won:
        assert len(r.json()["orders"]) == 3
    # each winner holds its three serials; the losers hold nothing
    assert await sale_counts(client, plenty["sale_id"]) == (44, 6, 0)
    assert await sale_counts(client, scarce["sale_id"]) == (0, 3, 0)


async def test_cancelling_an_order_gives_its_coins_back_once(
    client: Client, make_sale: Any, user: User, pool: asyncpg.Pool
) -> None:
    a = await make_sale(price_cents=1000, merchant_id="m-one")
    b = await make_sale(price_cents=3000, merchant_id="m-two")
    buyer, headers = user("back")
    await credit(client, buyer, 400, kind="coins")
    body = {"items": [{"sale_id": a["sale_id"]}, {"sale_id": b["sale_id"]}], "coins_cents": 400}
    out = (await client.post("/v1/checkouts", json=body, headers=headers)).json()
    first = out["orders"][0]
    assert first["coins_cents"] == 100
    assert (await wallet(client, headers))["coins_cents"] == 0
    r = await client.post(f"/v1/orders/{first['order_id']}/cancel", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    mine = await wallet(client, headers)
    assert mine["coins_cents"] == 100
    latest = mine["coin_entries"][0]
    assert (latest["kind"], latest["amount_cents"], latest["order_id"]) == (
        "return",
        100,
        first["order_id"],
    )
    # asked again (a retried hook, the timers): nothing more comes back
    problem(
        await client.post(f"/v1/orders/{first['order_id']}/cancel", headers=headers),
        409,
        "order_not_pending",
    )
    assert await order_released(pool, first["order_id"], "cancelled") == 0
    assert (await wallet(client, headers))["coins_cents"] == 100
    # the bills holding it can no longer be paid whole
    statuses = await pool.fetch(
        "SELECT kind, status FROM bills WHERE checkout_id = $1 ORDER BY kind", out["checkout_id"]
    )
    assert sorted((r["kind"], r["status"]) for r in statuses) == [
        ("merchant", "closed"),
        ("merchant", "open"),
        ("parent", "closed"),
    ]
