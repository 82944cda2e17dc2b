"""Coins come back once when an order carrying them expires or is refunded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.payments.audit import money_audit
from flashsale.payments.service import PaymentService
from tests.payments.helpers import eventually

from .conftest import ADMIN, PASSWORD, Client, credit, place, sale_counts, set_password, wallet

User = Callable[[str], tuple[str, dict[str, str]]]


async def test_an_expired_order_gives_its_coins_back_once(
    client: Client, make_sale: Any, user: User, service: PaymentService, engine: Engine
) -> None:
    quick = await make_sale(payment_timeout_s=1, price_cents=1000)
    slow = await make_sale(price_cents=1000)
    buyer, headers = user("expiry")
    await credit(client, buyer, 600, kind="coins")
    body = {"items": [{"sale_id": quick["sale_id"]}, {"sale_id": slow["sale_id"]}]}
    out = await place(client, headers, {**body, "coins_cents": 600})
    expiring = out["orders"][0]
    assert expiring["coins_cents"] == 300

    async def expired() -> bool:
        due = await engine.due_expiries(quick["sale_id"])
        return expiring["order_id"] in due

    await eventually(expired, timeout_s=10)
    assert await service.expire_order(expiring["order_id"]) == "expired"
    assert (await wallet(client, headers))["coins_cents"] == 300
    assert await service.expire_order(expiring["order_id"]) == "not_pending"
    assert (await wallet(client, headers))["coins_cents"] == 300
    assert (await sale_counts(client, quick["sale_id"]))[1] == 0
    parent = await client.get(f"/v1/bills/{out['bill']['bill_id']}", headers=headers)
    assert parent.json()["status"] == "closed"  # the timeout closed it with its order
    audit = await money_audit(service.pool, quick["sale_id"], engine)
    assert audit.ok, audit.violations


async def test_a_refunded_order_gives_its_coins_back(
    client: Client, make_sale: Any, user: User, pool: asyncpg.Pool, engine: Engine
) -> None:
    a = await make_sale(price_cents=1000)
    buyer, headers = user("refund")
    await credit(client, buyer, 250, kind="coins")
    await credit(client, buyer, 5000)
    await set_password(client, headers)
    out = await place(client, headers, {"items": [{"sale_id": a["sale_id"]}], "coins_cents": 250})
    order_id = out["orders"][0]["order_id"]
    paid = await client.post(
        f"/v1/bills/{out['bill']['bill_id']}/payments",
        json={"method": "balance", "payment_password": PASSWORD},
        headers=headers,
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["amount_cents"] == 750
    assert (await wallet(client, headers))["coins_cents"] == 0
    cancelled = await client.post(f"/v1/orders/{order_id}/cancel", headers=headers)
    assert cancelled.json()["status"] == "refund_pending", cancelled.text
    refunds = (await client.get("/v1/admin/refunds?status=pending", headers=ADMIN)).json()
    mine = [r for r in refunds if r["order_id"] == order_id]
    assert len(mine) == 1
    approve = f"/v1/admin/refunds/{mine[0]['refund_id']}/approve"
    for _ in range(2):
        assert (await client.post(approve, json={}, headers=ADMIN)).status_code == 200
    order = (await client.get(f"/v1/orders/{order_id}", headers=headers)).json()
    assert order["status"] == "refunded"
    mine = await wallet(client, headers)
    assert mine["coins_cents"] == 250  # the coins back as coins
    assert mine["balance_cents"] == 5000  # the paid part back as balance, once
    audit = await money_audit(pool, a["sale_id"], engine)
    assert audit.ok, audit.violations
