"""The auth matrix: bearer JWT HS256, sub = user, role = admin."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.api.tokens import InvalidToken, TokenVerifier, mint_token

from .conftest import SECRET
from .helpers import problem

Client = AsyncTestClient[Litestar]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


NOW = int(time.time())
BAD_TOKENS = {
    "expired": mint_token(SECRET, "u", ttl_s=-10),
    "alg none": unsigned_token({"sub": "u", "exp": NOW + 3600, "role": "admin"}),
    "wrong secret": mint_token("another-secret-of-at-least-32-bytes!!", "u", admin=True),
    "malformed": "not.a.jwt",
    "garbage": "x" * 40,
    "no sub": jwt.encode({"exp": NOW + 3600}, SECRET, algorithm="HS256"),
    "no exp": jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"),
    "HS512": jwt.encode({"sub": "u", "exp": NOW + 3600}, SECRET, algorithm="HS512"),
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401(client: Client, make_sale: Any, name: str) -> None:
    await make_sale(sale_id="auth")
    headers = {"Authorization": f"Bearer {BAD_TOKENS[name]}"}
    problem(
        await client.post("/v1/sales/auth/purchase", json={}, headers=headers),
        401,
        "unauthenticated",
    )
    problem(await client.get("/v1/me/orders", headers=headers), 401, "unauthenticated")
    body = {"name": "x", "serials": {"range": [1, 2]}}
    problem(await client.post("/v1/sales", json=body, headers=headers), 401, "unauthenticated")


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "Bearer "])
async def test_missing_or_wrong_scheme_is_401(
    client: Client, make_sale: Any, header: str | None
) -> None:
    await make_sale(sale_id="auth2")
    headers = {} if header is None else {"Authorization": header}
    problem(
        await client.post("/v1/sales/auth2/purchase", json={}, headers=headers),
        401,
        "unauthenticated",
    )


async def test_unauthenticated_comes_before_body_validation(client: Client, make_sale: Any) -> None:
    await make_sale(sale_id="auth3")
    r = await client.post(
        "/v1/sales/auth3/purchase", content=b"{bad", headers={"content-type": "application/json"}
    )
    problem(r, 401, "unauthenticated")


async def test_buyer_vs_admin(
    client: Client, make_sale: Any, buyer: Any, admin: dict[str, str]
) -> None:
    await make_sale(sale_id="auth4")
    problem(
        await client.patch("/v1/sales/auth4", json={"status": "paused"}, headers=buyer("b")),
        403,
        "forbidden",
    )
    assert (
        await client.patch("/v1/sales/auth4", json={"status": "paused"}, headers=admin)
    ).status_code == 200
    # public read needs no token at all
    assert (await client.get("/v1/sales/auth4")).status_code == 200


def test_verifier_caches_and_honours_exp() -> None:
    verifier = TokenVerifier(SECRET, cache_size=2)
    token = mint_token(SECRET, "u1", ttl_s=1)
    assert verifier.verify(token).user_id == "u1"
    assert len(verifier) == 1
    assert verifier.verify(token).user_id == "u1"  # from the cache
    time.sleep(1.1)
    with pytest.raises(InvalidToken):
        verifier.verify(token)  # expired while cached
    assert len(verifier) == 0


def test_verifier_cache_is_bounded_lru() -> None:
    verifier = TokenVerifier(SECRET, cache_size=2)
    tokens = [mint_token(SECRET, f"u{i}") for i in range(3)]
    verifier.verify(tokens[0])
    verifier.verify(tokens[1])
    verifier.verify(tokens[0])  # most recent now
    verifier.verify(tokens[2])  # evicts tokens[1]
    assert len(verifier) == 2
    assert tokens[1] not in verifier._cache
    assert tokens[0] in verifier._cache


def test_verifier_does_not_cache_failures() -> None:
    verifier = TokenVerifier(SECRET)
    for token in BAD_TOKENS.values():
        with pytest.raises(InvalidToken):
            verifier.verify(token)
    assert len(verifier) == 0


def test_admin_claim() -> None:
    verifier = TokenVerifier(SECRET)
    assert verifier.verify(mint_token(SECRET, "ops", admin=True)).admin
    assert not verifier.verify(mint_token(SECRET, "b")).admin
    other_role = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 3600, "role": "superuser"}, SECRET, algorithm="HS256"
    )
    assert not verifier.verify(other_role).admin
