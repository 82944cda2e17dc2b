"""Key custody: the server draws a random drop's key, reveals it only once the sale is
closed for good, and a sale past its end can never be reopened (issue #12)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate, decode_sale_create

from .helpers import make_sale


def test_a_client_cannot_choose_the_key() -> None:
    body = {"name": "x", "serials": {"range": [1, 5]}, "assignment": "random"}
    for field in ("assignment_key", "perm_key", "key"):
        with pytest.raises(msgspec.ValidationError, match="unknown field"):
            decode_sale_create(msgspec.json.encode({**body, field: "mine"}))


async def test_each_sale_gets_its_own_random_key(engine: Engine) -> None:
    a = await make_sale(engine, "k1", assignment="random")
    b = await make_sale(engine, "k2", assignment="random")
    assert a.assignment_commitment != b.assignment_commitment
    key = await engine.redis.hget(engine.keys("k1").meta, "perm_key")
    assert len(key) == 32  # 128 bits from the CSPRNG (secrets), as hex


async def test_a_sale_past_its_end_cannot_be_reopened_nor_tuned(engine: Engine) -> None:
    end = datetime.now(UTC) + timedelta(hours=1)
    sale = await make_sale(engine, "k3", assignment="random", end_at=end)
    assert sale.assignment_key is None
    now = engine.clock()
    engine.clock = lambda: now + 3_600_000 + 1  # past end_at
    ended = await engine.get_sale("k3")
    assert ended.status == "closed" and ended.assignment_key is not None
    assert hashlib.sha256(ended.assignment_key.encode()).hexdigest() == sale.assignment_commitment
    later = SaleUpdate(end_at=end + timedelta(days=1))
    for update in (later, SaleUpdate(status="open"), SaleUpdate(per_user_limit=5)):
        with pytest.raises(errors.SaleClosed):
            await engine.tune("k3", update)
    with pytest.raises(errors.SaleClosed):
        await engine.purchase("k3", "u1")
    assert (await engine.get_sale("k3")).end_at == ended.end_at


async def test_a_closed_sale_stays_closed_and_keeps_its_key_revealed(engine: Engine) -> None:
    await make_sale(engine, "k4", assignment="random")
    assert (await engine.get_sale("k4")).assignment_key is None  # open: never revealed
    await engine.tune("k4", SaleUpdate(status="closed"))
    with pytest.raises(errors.SaleClosed):
        await engine.tune("k4", SaleUpdate(status="open"))
    assert (await engine.get_sale("k4")).assignment_key is not None
