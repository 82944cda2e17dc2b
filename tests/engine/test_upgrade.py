"""Orders written before packed records are moved by ``Engine.upgrade_orders`` and keep
working: read, listed, counted against the limit, cancelled, expired."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine, legacy_order_id
from flashsale.engine.models import ORDER_FIELDS

from .helpers import assert_invariants, make_sale


async def _legacy_order(engine: Engine, sale_id: str, user: str, n: int, **fields: object) -> str:
    """Write an order the way the scripts before packed records did (a hash per order)."""
    order_id = legacy_order_id(sale_id, user, n)
    now = engine.clock()
    record: dict[str, object] = {
        "order_id": order_id,
        "sale_id": sale_id,
        "user_id": user,
        "serial_kind": "r",
        "version": 1,
        "created_ms": now,
        "expires_ms": now + 60_000,
        "updated_ms": now,
        "price_cents": 500,
        "currency": "CNY",
        "payment_id": "",
        "reason": "",
        "ip": "",
        "fingerprint": "fp",
        **fields,
    }
    assert set(record) - {"fingerprint"} == set(ORDER_FIELDS)
    await engine.redis.hset(engine.keys(sale_id).legacy_order(order_id), mapping=record)  # type: ignore[arg-type]
    return order_id


async def test_legacy_orders_are_moved_and_keep_every_guarantee(engine: Engine) -> None:
    await make_sale(engine, "old", size=5)
    k = engine.keys("old")
    # the state the old scripts left: u1 bought twice (draws 0, 1), the first expired
    await engine.redis.hset(k.meta, mapping={"drawn": 2, "reserved": 1})
    await engine.redis.rpush(k.returned, "r:1")
    gone = await _legacy_order(
        engine, "old", "u1", 1, serial="1", status="expired", version=2, draw=0
    )
    held = await _legacy_order(engine, "old", "u1", 2, serial="2", status="pending_payment", draw=1)
    await engine.redis.zadd(k.expiry, {held: engine.clock() + 60_000})
    await engine.redis.hset(k.buyers, mapping={"n:u1": 2, "c:u1": 1})
    assert await engine.get_order(held) is None  # not readable in the old form

    assert await engine.upgrade_orders("old") == 2
    assert await engine.upgrade_orders("old") == 0  # idempotent
    assert await engine.redis.exists(k.legacy_order(held), k.legacy_order(gone)) == 0
    order = await engine.get_order(held)
    assert order is not None and order.status == "pending_payment" and order.serial == 2
    assert [o.order_id for o in await engine.buyer_orders("old", "u1")] == [gone, held]
    with pytest.raises(errors.LimitReached) as refused:
        await engine.purchase("old", "u1")
    assert refused.value.extra["order_ids"] == [held]
    await assert_invariants(engine, "old")
    cancelled = await engine.cancel(held, user_id="u1")
    assert cancelled.status == "cancelled" and cancelled.version == 2
    again = await engine.purchase("old", "u1")
    assert again.order.serial == 1  # the released serials are sold first
    await assert_invariants(engine, "old")


async def test_db_upgrade_moves_every_sales_old_orders(
    engine: Engine, redis_url: str, database_url: str, namespace: str
) -> None:
    """``flashsale db upgrade`` with FLASHSALE_REDIS_URL set runs the migrations, then moves
    every sale's orders still in the old form (the CLI, in a process of its own)."""
    await make_sale(engine, "cli-old", size=5)
    held = await _legacy_order(
        engine, "cli-old", "u1", 1, serial="1", status="pending_payment", draw=0
    )
    await engine.redis.hset(engine.keys("cli-old").buyers, mapping={"n:u1": 1, "c:u1": 1})
    env = {
        **os.environ,
        "FLASHSALE_ENV": "dev",
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_NAMESPACE": namespace,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flashsale.cli.main", "db", "upgrade",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "redis: 1 orders of 1 sales moved to packed records" in out.decode()
    order = await engine.get_order(held)
    assert order is not None and order.status == "pending_payment"


async def test_a_sale_with_the_array_forms_of_hot_and_cur_sells_on(engine: Engine) -> None:
    """A live sale across the deploy that packed "hot"/"cur" as streams of values: the
    arrays of the form before are never read; the first purchase rebuilds the settings
    ("hot2") and finds its segment, and the draws go on where they were."""
    import msgspec

    await make_sale(engine, "arrays", size=20, per_user_limit=2, price_cents=700)
    k = engine.keys("arrays")
    first = (await engine.purchase("arrays", "u1")).order  # draw 0
    meta = await engine.redis.hgetall(k.meta)
    hot = msgspec.msgpack.decode(b"\x9b" + meta[b"hot2"])  # eleven values, as an array
    assert hot[0] == "open" and hot[3] == 2 and hot[6] == 700 and len(hot) == 11
    # the form before: one array each, under the old names
    await engine.redis.hdel(k.meta, "hot2", "cur2")
    await engine.redis.hset(
        k.meta,
        mapping={
            "hot": msgspec.msgpack.encode(hot),
            "cur": msgspec.msgpack.encode([1, "r", 1, 20, 0]),
        },
    )
    second = (await engine.purchase("arrays", "u1")).order
    assert (str(first.serial), str(second.serial)) == ("1", "2") and second.price_cents == 700
    meta = await engine.redis.hgetall(k.meta)
    assert b"hot" not in meta and b"cur" not in meta and b"hot2" in meta and b"cur2" in meta
    with pytest.raises(errors.LimitReached):
        await engine.purchase("arrays", "u1")
    assert str((await engine.purchase("arrays", "u2")).order.serial) == "3"
    await assert_invariants(engine, "arrays")
