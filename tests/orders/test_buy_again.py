"""Buy again over the real app: a new order in the same sale with a purchase's checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flashsale.engine.engine import Engine
from tests.api.helpers import problem

from .conftest import ADMIN, Client

User = Callable[[str], tuple[str, dict[str, str]]]


async def _buy(client: Client, sale_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=headers)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def _tune(client: Client, sale_id: str, status: str) -> None:
    patched = await client.patch(f"/v1/sales/{sale_id}", json={"status": status}, headers=ADMIN)
    assert patched.status_code == 200, patched.text


async def test_buy_again_makes_a_new_order_once_per_key(
    client: Client, make_sale: Any, user: User
) -> None:
    sale = await make_sale(per_user_limit=2)
    _, headers = user("again")
    first = await _buy(client, sale["sale_id"], headers)
    await client.post(f"/v1/orders/{first['order_id']}/cancel", headers=headers)
    path = f"/v1/orders/{first['order_id']}/buy-again"
    keyed = {**headers, "Idempotency-Key": "again-1"}
    r = await client.post(path, headers=keyed)
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["sale_id"] == sale["sale_id"] and again["order_id"] != first["order_id"]
    assert again["status"] == "pending_payment" and again["price_cents"] == sale["price_cents"]
    replay = await client.post(path, headers=keyed)
    assert replay.status_code == 200 and replay.json() == again
    # a second buy again (no key) reaches the limit of 2 live orders
    assert (await client.post(path, headers=headers)).status_code == 201
    problem(await client.post(path, headers=headers), 409, "limit_reached")
    _, stranger = user("stranger")
    problem(await client.post(path, headers=stranger), 404, "order_not_found")
    problem(await client.post("/v1/orders/nope/buy-again", headers=headers), 404, "order_not_found")


async def test_each_refusal_has_its_code(
    client: Client, make_sale: Any, user: User, engine: Engine
) -> None:
    sale = await make_sale(serials={"range": [1, 1]})
    _, headers = user("refusals")
    order = await _buy(client, sale["sale_id"], headers)
    path = f"/v1/orders/{order['order_id']}/buy-again"
    _, other = user("other")
    other_order_sale = await make_sale(serials={"range": [1, 2]}, per_user_limit=1)
    mine = await _buy(client, other_order_sale["sale_id"], other)
    other_path = f"/v1/orders/{mine['order_id']}/buy-again"
    await client.post(f"/v1/orders/{mine['order_id']}/cancel", headers=other)
    _, third = user("third")
    await _buy(client, other_order_sale["sale_id"], third)
    await _buy(client, other_order_sale["sale_id"], user("fourth")[1])
    problem(await client.post(other_path, headers=other), 409, "sold_out")
    await _tune(client, sale["sale_id"], "paused")
    problem(await client.post(path, headers=headers), 409, "sale_paused")
    await _tune(client, sale["sale_id"], "closed")
    problem(await client.post(path, headers=headers), 409, "sale_closed")
    await engine.redis.delete(engine.keys(sale["sale_id"]).meta)  # the drop is delisted
    problem(await client.post(path, headers=headers), 409, "sale_delisted")
