"""A tune of a bucketed drop that stops midway (the process killed between two buckets)
is visible and safe: the sale reads ``tune_pending`` until every bucket has it, the same
tune retried completes it without writing it twice, and any later tune brings the
stragglers level (docs/design.md, "Bucketed drops")."""

from __future__ import annotations

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import bucket_slot, home_bucket
from flashsale.engine.models import SaleUpdate, SerialsSpec

from .helpers import make_sale
from .tune_child import tune_in_a_child

B = 3


async def _stopped(
    redis_url: str, engine: Engine, sale_id: str, update: dict[str, object], crash_at: str
) -> None:
    """A bucketed drop, and a tune of it killed at ``crash_at``."""
    await make_sale(engine, sale_id, size=9, buckets=B)
    code, output = await tune_in_a_child(redis_url, engine.namespace, sale_id, update, crash_at)
    assert code == -9, (code, output)


async def _statuses(engine: Engine, sale_id: str) -> list[str]:
    return [
        (await engine.redis.hget(engine.keys(bucket_slot(sale_id, b)).meta, "status")).decode()
        for b in range(B)
    ]


def _homed(bucket: int) -> str:
    return next(u for u in (f"u{i}" for i in range(1000)) if home_bucket(u, B) == bucket)


async def _tunes(engine: Engine, sale_id: str) -> int:
    events = await engine.redis.xrange(engine.keys(sale_id).events)
    return sum(1 for _, fields in events if fields[b"type"] == b"sale_tuned")


async def test_a_pause_stopped_after_bucket_1_reads_pending_and_a_retry_completes_it(
    engine: Engine, redis_url: str
) -> None:
    await _stopped(redis_url, engine, "tp", {"status": "paused"}, "tune.after_bucket_1")
    # bucket 0 and 1 paused, bucket 2 not: the sale says so rather than a quiet "paused"
    assert await _statuses(engine, "tp") == ["paused", "paused", "open"]
    sale = await engine.get_sale("tp")
    assert sale.status == "paused" and sale.tune_pending
    with pytest.raises(errors.SalePaused):
        await engine.purchase("tp", _homed(1))
    # the same tune again: a no-op where it landed, the rest brought level
    again = await engine.tune("tp", SaleUpdate(status="paused"))
    assert again.status == "paused" and not again.tune_pending
    assert await _statuses(engine, "tp") == ["paused"] * B
    assert await _tunes(engine, "tp") == 1, "the retry wrote the sale's event again"
    with pytest.raises(errors.SalePaused):
        await engine.purchase("tp", _homed(2))
    # an unbucketed sale is not keyed: the same tune twice is two tunes, as before
    await make_sale(engine, "plain", size=3)
    for _ in range(2):
        await engine.tune("plain", SaleUpdate(status="paused"))
    assert await _tunes(engine, "plain") == 2


async def test_a_close_stopped_after_bucket_0_is_completed_by_any_later_tune(
    engine: Engine, redis_url: str
) -> None:
    await _stopped(redis_url, engine, "tc", {"status": "closed"}, "tune.after_bucket_0")
    assert await _statuses(engine, "tc") == ["closed", "open", "open"]
    assert (await engine.get_sale("tc")).tune_pending
    # a different tune is refused (the sale is closed for good), and still levels the rest
    with pytest.raises(errors.SaleClosed):
        await engine.tune("tc", SaleUpdate(per_user_limit=2))
    assert await _statuses(engine, "tc") == ["closed"] * B
    sale = await engine.get_sale("tc")
    assert sale.status == "closed" and not sale.tune_pending
    with pytest.raises(errors.SaleClosed):
        await engine.purchase("tc", _homed(2))


async def test_added_stock_retried_after_a_stop_is_added_once(
    engine: Engine, redis_url: str
) -> None:
    update = {"add_serials": {"range": [10, 12]}, "per_user_limit": 3}
    await _stopped(redis_url, engine, "ta", update, "tune.after_bucket_0")
    assert (await engine.get_sale("ta")).total == 12
    again = await engine.tune(
        "ta", SaleUpdate(add_serials=SerialsSpec(range=(10, 12)), per_user_limit=3)
    )
    assert again.total == 12 and again.per_user_limit == 3 and not again.tune_pending
    for b in range(B):
        limit = await engine.redis.hget(engine.keys(bucket_slot("ta", b)).meta, "per_user_limit")
        assert limit == b"3", b


async def test_levelling_skips_a_bucket_that_lost_its_keys(engine: Engine) -> None:
    """The timers' levelling (Engine.level_buckets) brings the buckets behind to bucket 0's
    settings; a bucket whose keys are gone (a shard restarted empty) is not recreated."""
    await make_sale(engine, "lv", size=9, buckets=B)
    await engine.redis.hset(engine.keys("lv").meta, mapping={"status": "paused", "version": 5})
    await engine.redis.delete(engine.keys(bucket_slot("lv", 2)).meta)
    assert await engine.level_buckets("lv") == 1
    assert await engine.redis.hget(engine.keys(bucket_slot("lv", 1)).meta, "status") == b"paused"
    assert not await engine.redis.exists(engine.keys(bucket_slot("lv", 2)).meta)
    assert await engine.level_buckets("lv") == 0
