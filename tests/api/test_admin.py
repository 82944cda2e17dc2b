"""The admin desk over HTTP: sales, a sale's orders, a serial's orders, a buyer's ledger (paged
with Link headers), and unlocking or resetting a payment password with its trail."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.engine.engine import Engine
from flashsale.store.persist import Persister

from .conftest import bearer
from .helpers import NEXT, every_page, problem

Client = AsyncTestClient[Litestar]
ADMIN = bearer("ops-desk", admin=True)


async def _drain(engine: Engine, database_url: str, namespace: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await Persister(engine.redis, pool, namespace=namespace).drain(timeout_s=30)
    finally:
        await pool.close()


async def _every_page(client: Client, first: str) -> list[list[dict[str, Any]]]:
    return await every_page(client, first, ADMIN)


async def test_sales_and_orders_page_newest_first(
    db_client: Client, engine: Engine, migrated_database_url: str, namespace: str
) -> None:
    client = db_client
    ids = [f"adm-{namespace}-{i}" for i in range(3)]
    for sale_id in ids:
        body = {"sale_id": sale_id, "name": "desk", "serials": {"range": [1, 5]}}
        assert (await client.post("/v1/sales", json=body, headers=ADMIN)).status_code == 201
    orders = []
    for user in ("ann", "bob", "cy"):
        r = await client.post(f"/v1/sales/{ids[0]}/purchase", json={}, headers=bearer(user))
        assert r.status_code == 201, r.text
        orders.append(r.json())
    cancelled = orders[0]
    r = await client.post(f"/v1/orders/{cancelled['order_id']}/cancel", headers=bearer("ann"))
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/sales/{ids[0]}/purchase", json={}, headers=bearer("dee"))
    resold = r.json()
    assert resold["serial"] == cancelled["serial"], "a released serial is sold first"
    await _drain(engine, migrated_database_url, namespace)

    # every sale, newest first, a page of one at a time, live counters from Redis
    listed = [s for page in await _every_page(client, "/v1/admin/sales?limit=1") for s in page]
    mine = [s for s in listed if s["sale_id"] in ids]
    assert [s["sale_id"] for s in mine] == ids[::-1]
    first = next(s for s in mine if s["sale_id"] == ids[0])
    assert first["in_redis"] and (first["total"], first["reserved"]) == (5, 3)
    # a sale Redis lost (a crash in fast mode) is listed from PostgreSQL, counters unknown
    await engine.redis.delete(engine.keys(ids[2]).meta)
    r = await client.get("/v1/admin/sales?limit=1", headers=ADMIN)
    [lost] = r.json()
    assert (lost["sale_id"], lost["in_redis"], lost["available"]) == (ids[2], False, None)
    assert lost["status"] == "open" and lost["total"] == 5

    # a sale's orders, paged, and by status
    pages = await _every_page(client, f"/v1/admin/sales/{ids[0]}/orders?limit=3")
    assert [len(page) for page in pages] == [3, 1]
    got = [o["order_id"] for page in pages for o in page]
    assert got[0] == resold["order_id"] and sorted(got) == sorted(
        [o["order_id"] for o in orders] + [resold["order_id"]]
    )
    r = await client.get(f"/v1/admin/sales/{ids[0]}/orders?status=cancelled", headers=ADMIN)
    assert [o["order_id"] for o in r.json()] == [cancelled["order_id"]]
    assert r.json()[0]["serial"] == cancelled["serial"]  # a range serial reads as a number

    # every order that held a serial, the live one first
    serial = cancelled["serial"]
    r = await client.get(f"/v1/admin/sales/{ids[0]}/serials/{serial}/orders", headers=ADMIN)
    assert [(o["order_id"], o["status"]) for o in r.json()] == [
        (resold["order_id"], "pending_payment"),
        (cancelled["order_id"], "cancelled"),
    ]

    # refusals
    problem(await client.get("/v1/admin/sales", headers=bearer("ann")), 403, "forbidden")
    problem(
        await client.get("/v1/admin/sales?cursor=bm90LW91cnM", headers=ADMIN),
        422,
        "validation_error",
    )
    problem(
        await client.get("/v1/admin/sales/no%20such/orders", headers=ADMIN), 404, "sale_not_found"
    )


async def test_a_buyers_ledger_pages_and_shows_balances(db_client: Client) -> None:
    client = db_client
    user = "ledger-buyer"
    for n, (amount, currency) in enumerate([(100, "CNY"), (250, "CNY"), (700, "USD")]):
        r = await client.post(
            f"/v1/admin/wallets/{user}/credit",
            json={"amount_cents": amount, "reason": f"gift {n}", "currency": currency},
            headers=ADMIN | {"Idempotency-Key": f"ledger-{n}-{id(client)}"},
        )
        assert r.status_code == 200, r.text
    coins = {"amount_cents": 40, "reason": "coins gift", "currency": "EUR", "kind": "coins"}
    r = await client.post(
        f"/v1/admin/wallets/{user}/credit",
        json=coins,
        headers=ADMIN | {"Idempotency-Key": f"ledger-coins-{id(client)}"},
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/admin/buyers/{user}/ledger?limit=2", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {b["currency"]: (b["balance_cents"], b["coins_cents"]) for b in body["balances"]} == {
        "CNY": (350, 0),
        "EUR": (0, 40),
        "USD": (700, 0),
    }
    # the coin movements stand in the same timeline, each saying its ledger
    assert [(e["ledger"], e["amount_cents"]) for e in body["entries"]] == [
        ("coins", 40),
        ("balance", 700),
    ]
    assert body["entries"][0]["kind"] == "credit" and body["entries"][0]["reason"] == "coins gift"
    assert body["entries"][1]["actor"] == "ops-desk" and body["next_cursor"]
    assert NEXT.match(r.headers["link"])
    r = await client.get(
        f"/v1/admin/buyers/{user}/ledger?limit=2&cursor={body['next_cursor']}", headers=ADMIN
    )
    rest = r.json()
    assert [e["amount_cents"] for e in rest["entries"]] == [250, 100]
    assert rest["next_cursor"] is None and "link" not in r.headers
    r = await client.get(f"/v1/admin/buyers/{user}/ledger?currency=USD", headers=ADMIN)
    assert [e["currency"] for e in r.json()["entries"]] == ["USD"]
    r = await client.get(f"/v1/admin/buyers/{user}/ledger?currency=EUR", headers=ADMIN)
    assert [(e["ledger"], e["currency"]) for e in r.json()["entries"]] == [("coins", "EUR")]
    r = await client.get(f"/v1/admin/buyers/{user}/ledger?cursor=WzFd", headers=ADMIN)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"  # not our cursor


async def test_unlock_and_reset_a_payment_password_leave_a_trail(db_client: Client) -> None:
    client = db_client
    user = "forgetful"
    desk = f"/v1/admin/buyers/{user}/payment-password"
    why = {"reason": "ticket 4711: buyer called, identity checked"}
    problem(
        await client.post(f"{desk}/unlock", json=why, headers=ADMIN),
        409,
        "payment_password_not_set",
    )
    r = await client.put(
        "/v1/me/payment-password", json={"password": "135790"}, headers=bearer(user)
    )
    assert r.status_code == 204, r.text
    wrong = {"password": "000000", "old_password": "111111"}
    for _ in range(5):  # a change with a wrong old password counts as a wrong attempt
        r = await client.put("/v1/me/payment-password", json=wrong, headers=bearer(user))
        assert r.status_code == 403, r.text
    assert r.json()["code"] == "payment_password_locked"
    state = (await client.get(desk, headers=ADMIN)).json()
    assert state["set"] and state["locked"] and state["actions"] == []

    r = await client.post(f"{desk}/unlock", json=why, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert not r.json()["locked"] and r.json()["failed_attempts"] == 0
    [action] = r.json()["actions"]
    assert (action["action"], action["actor"], action["reason"]) == (
        "unlock",
        "api:ops-desk",
        why["reason"],
    )

    problem(await client.post(f"{desk}/reset", json={}, headers=ADMIN), 400, "validation_error")
    r = await client.post(f"{desk}/reset", json={"reason": "forgot it"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["set"] is False, r.text
    assert [a["action"] for a in r.json()["actions"]] == ["reset", "unlock"]
    r = await client.put(
        "/v1/me/payment-password", json={"password": "975310"}, headers=bearer(user)
    )
    assert r.status_code == 204, "a reset password is set again without the old one"


async def test_the_next_page_link_of_a_buyer_with_any_characters_is_percent_encoded(
    db_client: Client,
) -> None:
    """A header is latin-1: the Link of a ledger whose buyer id holds other characters was
    a 500 (found by schemathesis); it is the path as sent, percent-encoded."""
    client = db_client
    sent = "%C2%A7%F1%A1%BC%B4i%C2%84%F0%B2%AD%8CwS%C4%80%1E"  # "§񡼴i\x84𲭌wSĀ\x1e"
    for n in range(2):
        r = await client.post(
            f"/v1/admin/wallets/{sent}/credit",
            json={"amount_cents": 100, "reason": "gift"},
            headers=ADMIN | {"Idempotency-Key": f"odd-{n}-{id(client)}"},
        )
        assert r.status_code == 200, r.text
    r = await client.get(f"/v1/admin/buyers/{sent}/ledger?limit=1", headers=ADMIN)
    assert r.status_code == 200, r.text
    link = r.headers["link"]
    assert link.startswith(f"</v1/admin/buyers/{sent}/ledger?") and link.isascii(), link
    target = link[1 : link.index(">")]
    rest = await client.get(target, headers=ADMIN)
    assert rest.status_code == 200 and len(rest.json()["entries"]) == 1, rest.text
