"""Bad input is refused with a clear error and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SaleUpdate
from flashsale.errors import ValidationFailed

from .helpers import make_sale

decode_create = msgspec.json.Decoder(SaleCreate).decode
decode_update = msgspec.json.Decoder(SaleUpdate).decode


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"name": "x", "serials": {"list": []}}', "length >= 1"),
        (b'{"name": "x", "serials": {}}', "exactly one"),
        (b'{"name": "x", "serials": {"range": [5, 1]}}', "low <= high"),
        (b'{"name": "x", "serials": {"range": [-1, 3]}}', ">= 0"),
        (b'{"name": "x", "serials": {"range": [1, 3]}, "per_user_limit": -1}', ">= 1"),
        (b'{"name": "x", "serials": {"range": [1, 3]}, "per_user_limit": 0}', ">= 1"),
        (b'{"name": "x", "serials": {"range": [1, 3]}, "sale_id": "bad id!"}', "matching regex"),
        (b'{"name": "x", "serials": {"range": [1, 3]}, "payment_timeout_s": 0}', ">= 1"),
        (b'{"name": "x", "serials": {"list": ["a", "a"]}}', "twice"),
        (b'{"name": "x", "serials": {"range": [1, 3]}, "owner": "me"}', "unknown field"),
        (
            b'{"name": "x", "serials": {"range": [1, 3]}, '
            b'"start_at": "2026-12-01T12:00:00Z", "end_at": "2026-12-01T11:00:00Z"}',
            "end_at must be after start_at",
        ),
        (
            b'{"name": "x", "serials": {"range": [1, 3]}, "start_at": "2026-12-01T12:00:00"}',
            "timezone",
        ),
    ],
)
def test_malformed_sale_bodies_are_refused(body: bytes, fragment: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=fragment):
        decode_create(body)


def test_malformed_updates_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_update(b'{"status": "sold_out"}')
    with pytest.raises(msgspec.ValidationError):
        decode_update(b'{"per_user_limit": -3}')
    assert decode_update(b'{"per_ip_limit": null}').per_ip_limit is None


async def test_unknown_sale_and_order(engine: Engine) -> None:
    with pytest.raises(errors.SaleNotFound):
        await engine.purchase("nope", "u1")
    with pytest.raises(errors.SaleNotFound):
        await engine.get_sale("nope")
    with pytest.raises(errors.SaleNotFound):
        await engine.tune("nope", SaleUpdate(status="paused"))
    with pytest.raises(errors.OrderNotFound):
        await engine.cancel("nope.0123456789abcdef0123")
    with pytest.raises(errors.OrderNotFound):
        await engine.confirm_payment("malformed-id", "p1")
    assert await engine.get_order("malformed") is None
    assert await engine.redis.keys(f"{engine.namespace}:*") == []  # nothing was written


async def test_duplicate_sale_and_bad_tune_change_nothing(engine: Engine) -> None:
    await make_sale(engine, "once", size=3)
    before = await engine.get_sale("once")
    with pytest.raises(errors.SaleExists):
        await make_sale(engine, "once", size=9)
    with pytest.raises(ValidationFailed):
        await engine.tune("once", SaleUpdate(end_at=before.start_at - timedelta(seconds=1)))
    assert await engine.get_sale("once") == before
