"""Orders: read (owner or admin; others 404), list mine, cancel."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.engine.engine import Engine

from .helpers import problem

Client = AsyncTestClient[Litestar]


async def _buy(client: Client, sale_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=headers)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def test_owner_and_admin_read_others_get_404(
    client: Client, make_sale: Any, buyer: Any, admin: dict[str, str]
) -> None:
    await make_sale(sale_id="o1")
    order = await _buy(client, "o1", buyer("owner"))
    path = f"/v1/orders/{order['order_id']}"
    mine = await client.get(path, headers=buyer("owner"))
    assert mine.status_code == 200
    assert mine.json()["status"] == "pending_payment" and mine.json()["user_id"] == "owner"
    assert (await client.get(path, headers=admin)).status_code == 200
    problem(await client.get(path, headers=buyer("stranger")), 404, "order_not_found")
    problem(await client.get(path), 401, "unauthenticated")
    problem(
        await client.get("/v1/orders/o1.0123456789abcdef0123", headers=admin),
        404,
        "order_not_found",
    )
    problem(await client.get("/v1/orders/garbage", headers=admin), 404, "order_not_found")


async def test_my_orders(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="o2", per_user_limit=2)
    await make_sale(sale_id="o3")
    a = await _buy(client, "o2", buyer("me"))
    b = await _buy(client, "o2", buyer("me"))
    c = await _buy(client, "o3", buyer("me"))
    await _buy(client, "o3", buyer("someone-else"))
    every = (await client.get("/v1/me/orders", headers=buyer("me"))).json()
    assert {o["order_id"] for o in every} == {a["order_id"], b["order_id"], c["order_id"]}
    one_sale = (await client.get("/v1/me/orders?sale_id=o2", headers=buyer("me"))).json()
    assert {o["order_id"] for o in one_sale} == {a["order_id"], b["order_id"]}
    assert (await client.get("/v1/me/orders", headers=buyer("nobody"))).json() == []
    problem(
        await client.get("/v1/me/orders?sale_id=bad%20id", headers=buyer("me")),
        400,
        "validation_error",
    )


async def test_cancel(client: Client, make_sale: Any, buyer: Any, admin: dict[str, str]) -> None:
    await make_sale(sale_id="o4", serials={"range": [1, 1]})
    order = await _buy(client, "o4", buyer("me"))
    path = f"/v1/orders/{order['order_id']}/cancel"
    problem(await client.post(path, headers=buyer("stranger")), 404, "order_not_found")
    r = await client.post(path, headers=buyer("me"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    body = problem(await client.post(path, headers=buyer("me")), 409, "order_not_pending")
    assert body["order_status"] == "cancelled"
    # the serial is back in the pool
    sale = (await client.get("/v1/sales/o4")).json()
    assert (sale["available"], sale["reserved"]) == (1, 0)
    again = await _buy(client, "o4", buyer("other"))
    assert again["serial"] == order["serial"]
    r = await client.post(f"/v1/orders/{again['order_id']}/cancel", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    problem(await client.post("/v1/orders/nope/cancel", headers=admin), 404, "order_not_found")


async def test_complete_a_delivered_order_and_cancel_refused_once_delivery_started(
    client: Client, make_sale: Any, buyer: Any, engine: Engine
) -> None:
    await make_sale(sale_id="o9", after_sales_window_s=3600)
    sale = (await client.get("/v1/sales/o9")).json()
    assert sale["after_sales_window_s"] == 3600
    order_id = (await _buy(client, "o9", buyer("me")))["order_id"]
    await engine.confirm_payment(order_id, "pay-1")
    await engine.start_delivery(order_id)
    cancel = f"/v1/orders/{order_id}/cancel"
    complete = f"/v1/orders/{order_id}/complete"
    problem(await client.post(cancel, headers=buyer("me")), 409, "order_in_delivery")
    problem(await client.post(complete, headers=buyer("me")), 409, "order_not_pending")
    await engine.confirm_delivery(order_id)
    problem(await client.post(cancel, headers=buyer("me")), 409, "order_delivered")
    problem(await client.post(complete, headers=buyer("stranger")), 404, "order_not_found")
    done = await client.post(complete, headers=buyer("me"))
    assert done.status_code == 200 and done.json()["status"] == "completed"
    again = await client.post(complete, headers=buyer("me"))
    assert again.status_code == 200 and again.json()["version"] == done.json()["version"]
    problem(await client.post(cancel, headers=buyer("me")), 409, "order_delivered")
