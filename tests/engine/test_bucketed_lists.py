"""A bucketed drop's list: each bucket stores only the items its window draws, a list
longer than one creation chunk is loaded in chunks per bucket, and selling, borrowing,
releases, added stock and ``verify`` still give every serial exactly once."""

from __future__ import annotations

import asyncio

import pytest

from flashsale.engine import buckets, errors
from flashsale.engine import engine as engine_module
from flashsale.engine.engine import LIST_CHUNK, Engine
from flashsale.engine.keys import home_bucket
from flashsale.engine.models import Order, SaleUpdate, SerialsSpec
from flashsale.engine.positions import list_positions
from flashsale.engine.verify import verify_sale
from flashsale.errors import ValidationFailed

from .helpers import assert_invariants, make_sale


def _users_of(bucket: int, count: int, n: int) -> list[str]:
    found = [f"b{i}" for i in range(20_000) if home_bucket(f"b{i}", count) == bucket]
    return found[:n]


async def _stored(engine: Engine, slot: str) -> tuple[int, int, int]:
    """(items stored, itemset size, window size) of one bucket."""
    k = engine.keys(slot)
    first, total = await engine.redis.hmget(k.meta, ["first", "total"])
    return (
        await engine.redis.hlen(k.items),
        await engine.redis.scard(k.itemset),
        int(total) - int(first or 0),
    )


async def _sell_out(engine: Engine, sale_id: str, n: int, homes: list[str]) -> list[Order]:
    """The buyers ``homes`` buy at once, round after round, until every one of them is
    answered sold_out: the orders."""
    got: list[Order] = []
    for _ in range(n + 1):  # bounded: a round sells at least one serial or ends it
        results = await asyncio.gather(
            *(engine.purchase(sale_id, user) for user in homes), return_exceptions=True
        )
        got += [r.order for r in results if not isinstance(r, BaseException)]
        assert all(isinstance(r, errors.SoldOut) for r in results if isinstance(r, Exception))
        if all(isinstance(r, errors.SoldOut) for r in results):
            return got
    raise AssertionError("the drop never sold out")


@pytest.mark.parametrize("assignment", ["sequential", "random"])
async def test_each_bucket_stores_only_its_window(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, assignment: str
) -> None:
    """A small chunk (so the list is 4 segments) keeps the sell-out fast; the long list
    with the real chunk is the test below."""
    monkeypatch.setattr(engine_module, "LIST_CHUNK", 50)
    items = [f"L-{i:04d}" for i in range(185)]
    await make_sale(
        engine,
        "bl",
        serials=SerialsSpec(list=items),
        buckets=3,
        assignment=assignment,
        per_user_limit=1000,
    )
    sale = await engine.get_sale("bl")
    assert (sale.status, sale.total, sale.available) == ("open", 185, 185)
    shares = [await _stored(engine, slot) for slot in buckets.slots("bl", 3)]
    # s = 61: buckets 1 and 2 draw 61 each, bucket 0 the tail of 63; nothing twice
    assert shares == [(63, 63, 63), (61, 61, 61), (61, 61, 61)]
    for slot in buckets.slots("bl", 3):  # every bucket has every segment of the list
        assert int(await engine.redis.hget(engine.keys(slot).meta, "segments")) == 4
    assert await list_positions(engine, "bl") == {s: i + 1 for i, s in enumerate(items)}

    # one buyer of bucket 0: its tail first, then what buckets 1 and 2 lend
    got = await _sell_out(engine, "bl", 185, _users_of(0, 3, 1))
    assert sorted(str(o.serial) for o in got) == items
    assert {o.draw for o in got[:63]} == set(range(122, 185))  # its own window first
    if assignment == "sequential":
        assert [o.serial for o in got[:63]] == items[122:]
    # a release goes back to its home's pool as the serial, though another bucket's
    # window held it, and is sold again from there (no draw: a returned serial)
    borrowed = next(o for o in got if o.draw is not None and o.draw < 61)
    await engine.cancel(borrowed.order_id)
    assert await engine.redis.llen(engine.keys("bl").returned) == 1
    again = (await engine.purchase("bl", borrowed.user_id)).order
    assert (again.serial, again.draw) == (borrowed.serial, None)
    await assert_invariants(engine, "bl")
    await engine.tune("bl", SaleUpdate(status="closed"))
    report = await verify_sale(engine, "bl")
    assert report.ok, report
    if assignment == "random":
        assert report.checked == 185


async def test_a_long_bucketed_list_is_loaded_in_chunks_and_sells_each_serial_once(
    engine: Engine,
) -> None:
    n = LIST_CHUNK + 1_000  # two segments: over the old cap of one chunk
    items = [f"N-{i}" for i in range(n)]
    await make_sale(
        engine,
        "long",
        serials=SerialsSpec(list=items),
        buckets=3,
        assignment="random",
        per_user_limit=n,
    )
    sale = await engine.get_sale("long")
    assert (sale.status, sale.total, sale.available) == ("open", n, n)
    s = n // 3
    shares = [await _stored(engine, slot) for slot in buckets.slots("long", 3)]
    assert shares == [(n - 2 * s,) * 3, (s,) * 3, (s,) * 3]
    assert sum(items for items, _, _ in shares) == n  # each serial stored once
    # added stock lands in bucket 0 only; a serial of another bucket's share is refused
    elsewhere = (await engine.redis.srandmember(engine.keys("long.2").itemset)).decode()
    assert not await engine.redis.sismember(engine.keys("long").itemset, elsewhere)
    with pytest.raises(errors.SerialsRefused, match=elsewhere):
        await engine.tune("long", SaleUpdate(add_serials=SerialsSpec(list=["X-1", elsewhere])))
    await engine.tune("long", SaleUpdate(add_serials=SerialsSpec(list=["X-1", "X-2"])))
    assert [(await _stored(engine, slot))[0] for slot in buckets.slots("long", 3)] == [
        n - 2 * s + 2,
        s,
        s,
    ]
    buyers = [user for b in range(3) for user in _users_of(b, 3, 10)]
    got = await _sell_out(engine, "long", n + 2, buyers)
    assert sorted(str(o.serial) for o in got) == sorted([*items, "X-1", "X-2"])
    await engine.tune("long", SaleUpdate(status="closed"))
    report = await verify_sale(engine, "long")
    assert report.ok and report.checked == n + 2, report


async def _slot_args(engine: Engine, sale_id: str, b: int, token: int) -> list[str | int]:
    """create_sale-6's ARGV[1..19] for bucket ``b`` of a 3-bucket drop still loading."""
    now = engine.clock()
    return [sale_id, sale_id, "loading", now - 1000, now + 3_600_000, 1, 0, 60_000, 990,
            "CNY", "sequential", "k" * 32, "c" * 64, now, "platform", 604_800_000, 3, b,
            token]  # fmt: skip


async def test_a_share_is_loaded_once_in_order_and_only_by_its_creation(
    engine: Engine,
) -> None:
    items = [f"P-{i}" for i in range(30)]
    shares = buckets.list_shares(items, 3, 10, "sequential", "k" * 32)  # 3 segments
    assert shares[1] == [["s", 30, 0, 10, *[x for j in range(10) for x in (j, items[j])]],
                         ["s", 30, 10, 10], ["s", 30, 20, 10]]  # fmt: skip
    older, newer = await engine._begin_create("ld"), await engine._begin_create("ld")
    await engine._create_slot("ld.1", [*await _slot_args(engine, "ld", 1, newer), *shares[1][0]])
    with pytest.raises(errors.SaleExists):  # the older creation no longer owns the bucket
        await engine._load_shares("ld.1", older, shares[1][1:])
    with pytest.raises(ValidationFailed, match="not the next one"):
        await engine._load_shares("ld.1", newer, shares[1][2:])
    await engine._load_shares("ld.1", newer, shares[1][1:])
    await engine._load_shares("ld.1", newer, shares[1][2:])  # sent again: nothing written
    k = engine.keys("ld.1")
    assert await engine.redis.hget(k.meta, "segments") == b"3"
    assert await engine.redis.hlen(k.items) == 10 and await engine.redis.scard(k.itemset) == 10


async def test_a_bucketed_list_whose_loading_stopped_cannot_be_opened(engine: Engine) -> None:
    """Bucket 0 exists (the sale) before its later segments are loaded: a creation that
    stopped there leaves a sale whose window reaches draws no segment holds yet."""
    items = [f"Q-{i}" for i in range(30)]
    shares = buckets.list_shares(items, 3, 10, "sequential", "k" * 32)
    token = await engine._begin_create("stop")
    for b in (1, 2, 0):
        slot = f"stop.{b}" if b else "stop"
        await engine._create_slot(
            slot, [*await _slot_args(engine, "stop", b, token), *shares[b][0]]
        )
        if b:
            await engine._load_shares(slot, token, shares[b][1:])
    await engine._load_shares("stop", token, shares[0][1:2])  # stopped before the last
    with pytest.raises(ValidationFailed, match="still loading"):
        await engine.tune("stop", SaleUpdate(status="open"))
    with pytest.raises(errors.SaleNotOpen):
        await engine.purchase("stop", "early")
    sale = await engine.tune("stop", SaleUpdate(status="closed"))  # a close is allowed
    assert sale.status == "closed"
