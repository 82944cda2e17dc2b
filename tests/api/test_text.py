"""Text PostgreSQL cannot store (NUL, not UTF-8) is refused at the edge, and nothing is stored.

Every write endpoint's body, path parameters, the query, header values and the
token's ``sub``; the real app over the real Redis and PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.text import body_is_storable
from flashsale.engine.engine import Engine

from .conftest import SECRET, bearer
from .helpers import problem

Client = AsyncTestClient[Litestar]
NUL_JSON = '{"name": "a\\u0000b", "reason": "x\\u0000", "amount_cents": 100}'


async def _sale(client: Client, sale_id: str) -> None:
    body = {"sale_id": sale_id, "name": sale_id, "serials": {"range": [1, 3]}}
    r = await client.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
    assert r.status_code == 201, r.text


async def test_every_body_of_every_write_endpoint(db_client: Client, engine: Engine) -> None:
    """Each route with a body answers 422 to a NUL anywhere in it, before it acts."""
    await _sale(db_client, "t1")
    schema = (await db_client.get("/schema/openapi.json")).json()
    seen = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch") or "requestBody" not in operation:
                continue
            if "application/json" not in operation["requestBody"]["content"]:
                continue  # a multipart form (after-sales evidence): no JSON text to judge
            url = re.sub(r"\{sale_id\}", "t1", path)
            url = re.sub(r"\{[a-z_]+\}", "x1", url)
            r = await db_client.request(
                method.upper(),
                url,
                content=NUL_JSON,
                headers=bearer("ops", admin=True)
                | {"content-type": "application/json", "Idempotency-Key": f"k-{seen}"},
            )
            body = problem(r, 422, "validation_error")
            assert "cannot be stored" in body["detail"], (url, body)
            seen += 1
    assert seen >= 10  # the schema lists the write endpoints
    sale = (await db_client.get("/v1/sales/t1")).json()
    assert sale["name"] == "t1" and sale["reserved"] == 0  # neither renamed nor sold


@pytest.mark.parametrize(
    "body",
    [
        {"sale_id": "n\u0000ul", "name": "x", "serials": {"range": [1, 3]}},
        {"sale_id": "nul1", "name": "x\u0000", "serials": {"range": [1, 3]}},
        {"sale_id": "nul1", "name": "x", "serials": {"list": ["a", "b\u0000"]}},
    ],
)
async def test_a_sale_with_nul_is_not_created(client: Client, body: dict[str, Any]) -> None:
    r = await client.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
    problem(r, 422, "validation_error")
    assert (await client.get("/v1/sales/nul1")).status_code == 404


async def test_path_query_and_header(client: Client, engine: Engine) -> None:
    await _sale(client, "t2")
    buyer = bearer("b1")
    for url in ("/v1/sales/t2%00/purchase", "/v1/sales/t2/purchase?x=%00", "/v1/orders/%FF%FE"):
        problem(await client.post(url, json={}, headers=buyer), 422, "validation_error")
    problem(await client.get("/v1/me/orders?status=%C0%80", headers=buyer), 422, "validation_error")
    # a header value with NUL (the test client sends what a lenient proxy might pass on)
    r = await client.post(
        "/v1/sales/t2/purchase", json={}, headers=buyer | {"Idempotency-Key": "k\x00"}
    )
    problem(r, 422, "validation_error")
    assert (await client.get("/v1/sales/t2")).json()["reserved"] == 0
    # what is fine stays fine: an escaped backslash before "u0000" is no NUL
    r = await client.post(
        "/v1/sales",
        content=b'{"sale_id": "t3", "name": "C:\\\\u0000", "serials": {"range": [1, 1]}}',
        headers=bearer("ops", admin=True) | {"content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "C:\\u0000"


async def test_a_token_sub_with_nul_is_401_and_buys_nothing(client: Client, engine: Engine) -> None:
    await _sale(client, "t4")
    for sub in ("eve\u0000", "\ud800"):
        token = jwt.encode({"sub": sub, "exp": 2**40}, SECRET, algorithm="HS256")
        r = await client.post(
            "/v1/sales/t4/purchase", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        problem(r, 401, "unauthenticated")
    assert (await client.get("/v1/sales/t4")).json()["reserved"] == 0


def test_body_scan_unit() -> None:
    assert not body_is_storable(b'{"a": "\\u0000"}', "application/json")
    assert not body_is_storable(b'{"a": "\\\\\\u0000"}', "")  # \\ then \u0000
    assert body_is_storable(b'{"a": "\\\\u0000"}', "application/json")  # \\ then u0000
    assert body_is_storable(b'{"a": "\\u00001"}'[:0], "application/json")
    assert not body_is_storable(b"a=%00", "application/x-www-form-urlencoded")
    assert body_is_storable(b"\x00\x01binary", "multipart/form-data; boundary=x")
