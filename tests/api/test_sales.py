"""Sales endpoints: create, read, tune; validation and admin-only access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from .helpers import problem

Client = AsyncTestClient[Litestar]


async def test_create_returns_201_and_the_sale(client: Client, admin: dict[str, str]) -> None:
    body = {
        "sale_id": "drop-42",
        "name": "Genesis drop",
        "serials": {"range": [1, 100]},
        "assignment": "random",
        "per_user_limit": 2,
        "per_ip_limit": 5,
        "payment_timeout_s": 60,
        "price_cents": 9900,
        "currency": "CNY",
    }
    r = await client.post("/v1/sales", json=body, headers=admin)
    assert r.status_code == 201, r.text
    sale = r.json()
    assert sale["sale_id"] == "drop-42"
    assert (sale["total"], sale["available"], sale["reserved"], sale["sold"]) == (100, 100, 0, 0)
    assert sale["status"] == "open"
    assert sale["per_user_limit"] == 2 and sale["per_ip_limit"] == 5
    assert sale["assignment"] == "random"
    assert len(sale["assignment_commitment"]) == 64
    assert sale["assignment_key"] is None  # never before the sale closes


async def test_create_generates_an_id_and_takes_a_list(
    client: Client, admin: dict[str, str]
) -> None:
    body = {"name": "List drop", "serials": {"list": ["A-001", "A-002", "A-003"]}}
    r = await client.post("/v1/sales", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["sale_id"]
    assert r.json()["total"] == 3


async def test_create_twice_is_409_sale_exists(client: Client, make_sale: Any, admin: Any) -> None:
    await make_sale(sale_id="dup")
    r = await client.post(
        "/v1/sales",
        json={"sale_id": "dup", "name": "x", "serials": {"range": [1, 2]}},
        headers=admin,
    )
    problem(r, 409, "sale_exists")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "serials": {"range": [1, 2]}, "owner": "me"},  # unknown field
        {"name": "x", "serials": {"range": [1, 2]}, "per_user_limit": "1"},  # wrong type
        {"name": "x", "serials": {"range": [1, 2]}, "per_user_limit": 0},  # absurd
        {"name": "x", "serials": {"range": [1, 2]}, "payment_timeout_s": 86_401},
        {"name": "x", "serials": {"range": [5, 1]}},  # low > high
        {"name": "x", "serials": {"range": [1, 10**13]}},
        {"name": "x", "serials": {"range": [1, 2], "list": ["a"]}},  # both
        {"name": "x", "serials": {"list": ["a", "a"]}},  # duplicate
        {"name": "x", "serials": {"range": [1, 2]}, "sale_id": "no spaces"},
        {"name": "x", "serials": {"range": [1, 2]}, "currency": "yuan"},
        # the server draws a random drop's key: a client may not choose it (issue #12)
        {"name": "x", "serials": {"range": [1, 2]}, "assignment": "random", "assignment_key": "k"},
        {"name": "x", "serials": {"range": [1, 2]}, "after_sales_window_s": -1},
        {"name": "", "serials": {"range": [1, 2]}},
        {"serials": {"range": [1, 2]}},  # missing name
        {
            "name": "x",
            "serials": {"range": [1, 2]},
            "start_at": "2030-01-01T00:00:00Z",
            "end_at": "2029-01-01T00:00:00Z",
        },
    ],
)
async def test_create_validation_is_a_problem(
    client: Client, admin: dict[str, str], body: dict[str, Any]
) -> None:
    problem(await client.post("/v1/sales", json=body, headers=admin), 400, "validation_error")


async def test_malformed_json_is_validation_error(client: Client, admin: dict[str, str]) -> None:
    r = await client.post(
        "/v1/sales", content=b'{"name": ', headers={**admin, "content-type": "application/json"}
    )
    problem(r, 400, "validation_error")


async def test_get_is_public(client: Client, make_sale: Any) -> None:
    await make_sale(sale_id="pub", serials={"range": [1, 5]})
    r = await client.get("/v1/sales/pub")
    assert r.status_code == 200
    sale = r.json()
    for field in ("sale_id", "name", "status", "total", "available", "reserved", "sold"):
        assert field in sale
    assert "start_at" in sale and "end_at" in sale
    problem(await client.get("/v1/sales/nope"), 404, "sale_not_found")
    problem(await client.get("/v1/sales/bad%20id"), 404, "sale_not_found")


async def test_patch_tunes_a_live_sale(
    client: Client, make_sale: Any, admin: dict[str, str], buyer: Any
) -> None:
    await make_sale(sale_id="tune", serials={"range": [1, 2]})
    end = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    r = await client.patch(
        "/v1/sales/tune",
        json={
            "status": "paused",
            "end_at": end,
            "per_user_limit": 3,
            "per_ip_limit": 7,
            "payment_timeout_s": 120,
            "add_serials": {"range": [3, 4]},
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    sale = r.json()
    assert sale["status"] == "paused"
    assert sale["total"] == 4 and sale["per_user_limit"] == 3 and sale["per_ip_limit"] == 7
    assert sale["payment_timeout_s"] == 120
    problem(
        await client.post("/v1/sales/tune/purchase", json={}, headers=buyer("b1")),
        409,
        "sale_paused",
    )
    r = await client.patch(
        "/v1/sales/tune", json={"status": "open", "per_ip_limit": None}, headers=admin
    )
    assert r.json()["status"] == "open" and r.json()["per_ip_limit"] is None
    assert (
        await client.post("/v1/sales/tune/purchase", json={}, headers=buyer("b1"))
    ).status_code == 201
    r = await client.patch("/v1/sales/tune", json={"status": "closed"}, headers=admin)
    assert r.json()["status"] == "closed"
    problem(
        await client.post("/v1/sales/tune/purchase", json={}, headers=buyer("b2")),
        409,
        "sale_closed",
    )
    # a closed sale is final
    problem(
        await client.patch("/v1/sales/tune", json={"status": "open"}, headers=admin),
        409,
        "sale_closed",
    )


async def test_patch_refusals(client: Client, make_sale: Any, admin: dict[str, str]) -> None:
    await make_sale(sale_id="tune2", serials={"range": [1, 2]})
    problem(
        await client.patch("/v1/sales/nope", json={"status": "open"}, headers=admin),
        404,
        "sale_not_found",
    )
    problem(
        await client.patch("/v1/sales/tune2", json={"status": "sold"}, headers=admin),
        400,
        "validation_error",
    )
    problem(
        await client.patch("/v1/sales/tune2", json={"total": 5}, headers=admin),
        400,
        "validation_error",
    )
    # overlapping serials are a conflict with the sale's current state
    problem(
        await client.patch(
            "/v1/sales/tune2", json={"add_serials": {"range": [2, 3]}}, headers=admin
        ),
        409,
        "serials_conflict",
    )
    # the end must stay after the start: the engine refuses it as a validation error
    r = await client.patch(
        "/v1/sales/tune2", json={"end_at": "2000-01-01T00:00:00Z"}, headers=admin
    )
    problem(r, 422, "validation_error")


async def test_admin_endpoints_refuse_buyers_and_anonymous(
    client: Client, make_sale: Any, buyer: Any
) -> None:
    await make_sale(sale_id="adm")
    body = {"name": "x", "serials": {"range": [1, 2]}}
    problem(await client.post("/v1/sales", json=body, headers=buyer("b")), 403, "forbidden")
    problem(await client.post("/v1/sales", json=body), 401, "unauthenticated")
    problem(
        await client.patch("/v1/sales/adm", json={"status": "paused"}, headers=buyer("b")),
        403,
        "forbidden",
    )
    problem(await client.get("/v1/sales/adm/audit", headers=buyer("b")), 403, "forbidden")


async def test_scheduled_sale_is_not_open(client: Client, make_sale: Any, buyer: Any) -> None:
    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sale = await make_sale(sale_id="later", start_at=start)
    assert sale["status"] == "scheduled"
    problem(
        await client.post("/v1/sales/later/purchase", json={}, headers=buyer("b")),
        409,
        "sale_not_open",
    )


async def test_large_sale_body_is_accepted_but_purchase_body_is_bounded(
    client: Client, admin: dict[str, str], buyer: Any, make_sale: Any
) -> None:
    serials = [f"S-{i:06d}" for i in range(20_000)]  # ~300 kB: over the default body limit
    r = await client.post(
        "/v1/sales", json={"name": "big", "serials": {"list": serials}}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["total"] == 20_000
    await make_sale(sale_id="small")
    big = b"{" + b" " * (128 * 1024) + b"}"
    r = await client.post(
        "/v1/sales/small/purchase",
        content=big,
        headers={**buyer("b"), "content-type": "application/json"},
    )
    problem(r, 413, "payload_too_large")
