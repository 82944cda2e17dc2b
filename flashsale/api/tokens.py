"""Bearer JWTs (HS256): minting for the CLI and tests, verifying with a bounded cache.

PyJWT costs tens of microseconds of CPU per token (base64, JSON, HMAC); a
buyer hammering the purchase endpoint sends the same token each time, so a
verified token is remembered (keyed by the raw token, bounded LRU) until its
``exp``. Only tokens that verified are cached: garbage never fills the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import jwt
from msgspec import Struct

from flashsale.text import storable

ALGORITHM = "HS256"
DEFAULT_TTL_S = 12 * 3600
MAX_USER_ID = 128


class Principal(Struct, frozen=True):
    """Who is calling: the user id (claim ``sub``) and whether they are an admin."""

    user_id: str
    admin: bool


class InvalidToken(Exception):
    """The token is missing, malformed, unsigned, wrongly signed or expired."""


def mint_token(secret: str, user_id: str, admin: bool = False, ttl_s: int = DEFAULT_TTL_S) -> str:
    """A signed HS256 token for ``user_id`` (``role: admin`` when ``admin``)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if admin:
        claims["role"] = "admin"
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class TokenVerifier:
    def __init__(self, secret: str, *, cache_size: int = 100_000) -> None:
        self._secret = secret
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; ``InvalidToken`` otherwise."""
        cache = self._cache
        hit = cache.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                cache.move_to_end(token)
                return hit[0]
            del cache[token]
            raise InvalidToken("token expired")
        principal, exp = self._decode(token)
        cache[token] = (principal, exp)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID:
            raise InvalidToken("claim sub must be a non-empty string")
        if not storable(sub):  # a buyer PostgreSQL can't store would dead-letter their orders
            raise InvalidToken("claim sub must be text without NUL")
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise InvalidToken("claim exp must be a number")
        return Principal(user_id=sub, admin=claims.get("role") == "admin"), float(exp)

    def __len__(self) -> int:
        return len(self._cache)
