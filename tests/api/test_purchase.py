"""The purchase endpoint: answers, refusal codes, idempotency, body validation."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.body import decode_purchase_body, fingerprint
from flashsale.engine import errors
from flashsale.engine.engine import Engine

from .helpers import problem

Client = AsyncTestClient[Litestar]
PURCHASE_FIELDS = {
    "order_id",
    "sale_id",
    "serial",
    "status",
    "expires_at",
    "price_cents",
    "currency",
}


async def test_purchase_201_shape(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="p1", price_cents=9900, currency="USD")
    r = await client.post("/v1/sales/p1/purchase", json={}, headers=buyer("alice"))
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/json")
    order = r.json()
    assert set(order) == PURCHASE_FIELDS
    assert order["sale_id"] == "p1" and order["status"] == "pending_payment"
    assert order["serial"] == 1 and order["price_cents"] == 9900 and order["currency"] == "USD"
    sale = (await client.get("/v1/sales/p1")).json()
    assert (sale["available"], sale["reserved"]) == (9, 1)


async def test_empty_body_counts_as_empty_object(
    client: Client, make_sale: Any, buyer: Any
) -> None:
    await make_sale(sale_id="p2")
    r = await client.post("/v1/sales/p2/purchase", headers=buyer("bob"))
    assert r.status_code == 201, r.text


async def test_body_must_be_empty_object(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="p3")
    for body in (b'{"user_id": "mallory"}', b"[]", b"{", b'"x"', b"null"):
        r = await client.post(
            "/v1/sales/p3/purchase",
            content=body,
            headers={**buyer("b"), "content-type": "application/json"},
        )
        problem(r, 400, "validation_error")
    assert (await client.get("/v1/sales/p3")).json()["reserved"] == 0


async def test_limit_reached_carries_the_buyers_orders(
    client: Client, make_sale: Any, buyer: Any
) -> None:
    await make_sale(sale_id="p4", per_user_limit=1)
    first = (await client.post("/v1/sales/p4/purchase", json={}, headers=buyer("carol"))).json()
    body = problem(
        await client.post("/v1/sales/p4/purchase", json={}, headers=buyer("carol")),
        409,
        "limit_reached",
    )
    assert body["scope"] == "user" and body["limit"] == 1
    assert body["order_ids"] == [first["order_id"]]


async def test_per_ip_limit(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="p5", per_user_limit=5, per_ip_limit=2)
    for user in ("u1", "u2"):
        assert (
            await client.post("/v1/sales/p5/purchase", json={}, headers=buyer(user))
        ).status_code == 201
    body = problem(
        await client.post("/v1/sales/p5/purchase", json={}, headers=buyer("u3")),
        409,
        "limit_reached",
    )
    assert body["scope"] == "ip" and body["limit"] == 2


async def test_sold_out_and_not_found(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="p6", serials={"range": [1, 2]})
    serials = set()
    for user in ("a", "b"):
        r = await client.post("/v1/sales/p6/purchase", json={}, headers=buyer(user))
        serials.add(r.json()["serial"])
    assert serials == {1, 2}
    problem(
        await client.post("/v1/sales/p6/purchase", json={}, headers=buyer("c")), 409, "sold_out"
    )
    assert (await client.get("/v1/sales/p6")).json()["status"] == "sold_out"
    problem(
        await client.post("/v1/sales/zzz/purchase", json={}, headers=buyer("c")),
        404,
        "sale_not_found",
    )
    problem(
        await client.post("/v1/sales/bad%20id/purchase", json={}, headers=buyer("c")),
        404,
        "sale_not_found",
    )


async def test_user_id_comes_from_the_token_only(
    client: Client, make_sale: Any, buyer: Any
) -> None:
    await make_sale(sale_id="p7")
    r = await client.post(
        "/v1/sales/p7/purchase", json={}, headers={**buyer("dave"), "X-User-Id": "eve"}
    )
    order_id = r.json()["order_id"]
    order = (await client.get(f"/v1/orders/{order_id}", headers=buyer("dave"))).json()
    assert order["user_id"] == "dave"


# -- idempotency ---------------------------------------------------------------------


async def test_replay_same_key_same_body_is_200_same_order(
    client: Client, make_sale: Any, buyer: Any
) -> None:
    await make_sale(sale_id="i1", serials={"range": [1, 1]})
    headers = {**buyer("ann"), "Idempotency-Key": "k-1"}
    first = await client.post("/v1/sales/i1/purchase", json={}, headers=headers)
    assert first.status_code == 201
    again = await client.post("/v1/sales/i1/purchase", json={}, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    # the sale is now sold out: the replay still gets its answer, not sold_out
    problem(
        await client.post("/v1/sales/i1/purchase", json={}, headers=buyer("zed")), 409, "sold_out"
    )
    third = await client.post("/v1/sales/i1/purchase", json={}, headers=headers)
    assert third.status_code == 200 and third.json()["order_id"] == first.json()["order_id"]


async def test_same_key_same_request_in_any_form_is_one_purchase(
    client: Client, make_sale: Any, buyer: Any, engine: Engine
) -> None:
    """The fingerprint is over the parsed request: ``{}``, ``{ }`` and no body are one."""
    await make_sale(sale_id="i2")
    headers = {**buyer("ann"), "Idempotency-Key": "k-2", "content-type": "application/json"}
    first = await client.post("/v1/sales/i2/purchase", content=b"{ }", headers=headers)
    assert first.status_code == 201
    for body in (b"{}", b"", b" {\n\t} ", b"{ }"):
        again = await client.post("/v1/sales/i2/purchase", content=body, headers=headers)
        assert again.status_code == 200 and again.json() == first.json(), (body, again.text)
    assert (await client.get("/v1/sales/i2")).json()["reserved"] == 1
    # another request under the same key is still refused, naming the first order
    with pytest.raises(errors.IdempotencyMismatch) as refused:
        await engine.purchase("i2", "ann", idempotency_key="k-2", fingerprint="another")
    assert refused.value.extra["order_id"] == first.json()["order_id"]


def test_fingerprint_is_over_the_canonical_request() -> None:
    same = [
        b'{"items": [{"sale_id": "a", "quantity": 1}], "coins_cents": 5}',
        b'{ "coins_cents":5,\n "items":[{"quantity":1,"sale_id":"a"}] }',
    ]
    assert len({fingerprint(msgspec.json.decode(b)) for b in same}) == 1
    other = msgspec.json.decode(b'{"items": [{"sale_id": "a", "quantity": 2}], "coins_cents": 5}')
    assert fingerprint(other) != fingerprint(msgspec.json.decode(same[0]))
    # the purchase's canonical form is the bytes `{}` had before: keys in flight stay valid
    assert (
        fingerprint(decode_purchase_body(b"")) == hashlib.blake2b(b"{}", digest_size=16).hexdigest()
    )


async def test_keys_are_per_buyer(client: Client, make_sale: Any, buyer: Any) -> None:
    await make_sale(sale_id="i3")
    a = await client.post(
        "/v1/sales/i3/purchase", json={}, headers={**buyer("a"), "Idempotency-Key": "same"}
    )
    b = await client.post(
        "/v1/sales/i3/purchase", json={}, headers={**buyer("b"), "Idempotency-Key": "same"}
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["order_id"] != b.json()["order_id"]


async def test_refusals_are_not_remembered(
    client: Client, make_sale: Any, buyer: Any, admin: dict[str, str]
) -> None:
    await make_sale(sale_id="i4")
    await client.patch("/v1/sales/i4", json={"status": "paused"}, headers=admin)
    headers = {**buyer("ann"), "Idempotency-Key": "k-4"}
    problem(
        await client.post("/v1/sales/i4/purchase", json={}, headers=headers), 409, "sale_paused"
    )
    await client.patch("/v1/sales/i4", json={"status": "open"}, headers=admin)
    r = await client.post("/v1/sales/i4/purchase", json={}, headers=headers)
    assert r.status_code == 201  # the same key succeeds later


async def test_invalid_idempotency_key_is_validation_error(
    client: Client, make_sale: Any, buyer: Any
) -> None:
    await make_sale(sale_id="i5")
    for key in ("x" * 256, "has space", ""):
        r = await client.post(
            "/v1/sales/i5/purchase", json={}, headers={**buyer("a"), "Idempotency-Key": key}
        )
        problem(r, 400, "validation_error")


async def test_replay_after_cancel_still_answers_the_order(
    client: Client, make_sale: Any, buyer: Any, engine: Engine
) -> None:
    await make_sale(sale_id="i6")
    headers = {**buyer("ann"), "Idempotency-Key": "k-6"}
    first = (await client.post("/v1/sales/i6/purchase", json={}, headers=headers)).json()
    await engine.cancel(first["order_id"])
    again = await client.post("/v1/sales/i6/purchase", json={}, headers=headers)
    assert again.status_code == 200
    assert again.json()["order_id"] == first["order_id"]
    assert again.json()["status"] == "cancelled"
    await asyncio.sleep(0)
