"""A bucketed drop's creation stopped midway (the process killed between two buckets)
leaves orphan buckets: invisible as a sale, and replaced by the retried creation of the
same id, which then sells each serial once (docs/design.md, "Bucketed drops")."""

from __future__ import annotations

import asyncio
import os
import sys

import msgspec.structs as structs
import pytest

from flashsale.engine import engine as engine_module
from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import bucket_slot
from flashsale.engine.models import SaleCreate, SerialsSpec

B = 3


async def _create_in_a_child(
    redis_url: str, engine: Engine, sale_id: str, crash_at: str, kind: str = "range"
) -> None:
    env = {**os.environ, "FLASHSALE_ENV": "dev", "FLASHSALE_CRASH_AT": crash_at}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine.create_child", redis_url, engine.namespace, sale_id,
        str(B), kind, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode == -9, (child.returncode, out.decode() + err.decode())


def _spec(sale_id: str) -> SaleCreate:
    return SaleCreate(
        sale_id=sale_id,
        name="retried",
        serials=SerialsSpec(range=(1, 9)),
        assignment="random",
        buckets=B,
    )


async def _perm_keys(engine: Engine, sale_id: str) -> list[bytes | None]:
    return [
        await engine.redis.hget(engine.keys(bucket_slot(sale_id, b)).meta, "perm_key")
        for b in range(B)
    ]


async def test_orphans_of_a_stopped_creation_are_invisible_and_replaced(
    engine: Engine, redis_url: str
) -> None:
    await _create_in_a_child(redis_url, engine, "orph", "create.after_bucket_1")
    orphan = await _perm_keys(engine, "orph")
    assert orphan[1] is not None and orphan[0] is None and orphan[2] is None
    # not a sale: not readable, not listed, not worked on, not for sale
    with pytest.raises(errors.SaleNotFound):
        await engine.get_sale("orph")
    assert "orph" not in await engine.sale_ids()
    assert not {"orph", "orph.1"} & set(await engine.active_sale_ids())
    with pytest.raises(errors.SaleNotFound):
        await engine.purchase("orph", "early")
    # the same creation again succeeds: one key, one draw sequence over every bucket
    sale = await engine.create_sale(_spec("orph"))
    assert (sale.total, sale.available, sale.buckets) == (9, 9, B)
    keys = await _perm_keys(engine, "orph")
    assert keys[0] is not None and keys == [keys[0]] * B and keys[1] != orphan[1]
    assert "orph" in await engine.sale_ids()
    sold = [(await engine.purchase("orph", f"u{i}")).order for i in range(9)]
    assert sorted(int(o.serial) for o in sold) == list(range(1, 10))  # type: ignore[arg-type]
    with pytest.raises(errors.SoldOut):
        await engine.purchase("orph", "late")
    with pytest.raises(errors.SaleExists):  # and once it exists, a creation is refused
        await engine.create_sale(_spec("orph"))


async def test_a_list_share_left_by_a_stopped_creation_is_replaced(
    engine: Engine, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bucket 2 holds its share of every segment of the list when the creator dies; the
    retry (another key: other shares) replaces it whole, and each serial sells once."""
    await _create_in_a_child(redis_url, engine, "orphl", "create.after_bucket_2", "list")
    k2 = engine.keys("orphl.2")
    assert await engine.redis.hget(k2.meta, "segments") == b"3"  # 60 serials in 25s
    monkeypatch.setattr(engine_module, "LIST_CHUNK", 25)
    items = [f"L-{i:02d}" for i in range(60)]
    spec = structs.replace(_spec("orphl"), serials=SerialsSpec(list=items), per_user_limit=61)
    sale = await engine.create_sale(spec)
    assert (sale.total, sale.available, sale.status) == (60, 60, "open")
    stored = [await engine.redis.hlen(engine.keys(bucket_slot("orphl", b)).items) for b in range(B)]
    assert stored == [20, 20, 20] and await engine.redis.hget(k2.meta, "segments") == b"3"
    sold = [(await engine.purchase("orphl", "whale")).order for _ in range(60)]
    assert sorted(str(o.serial) for o in sold) == items
    with pytest.raises(errors.SoldOut):
        await engine.purchase("orphl", "whale")


async def test_a_creation_stopped_after_bucket_0_is_registered_by_its_retry(
    engine: Engine, redis_url: str
) -> None:
    await _create_in_a_child(redis_url, engine, "late-reg", "create.after_bucket_0")
    assert (await engine.get_sale("late-reg")).total == 9  # it exists, unregistered
    assert "late-reg" not in await engine.sale_ids()
    with pytest.raises(errors.SaleExists):
        await engine.create_sale(_spec("late-reg"))
    assert "late-reg" in await engine.sale_ids()
    assert {"late-reg", "late-reg.1", "late-reg.2"} <= set(await engine.active_sale_ids())


async def test_an_older_creation_never_writes_over_a_newer_one(engine: Engine) -> None:
    """Two creations of one id racing: the one that drew the older token can neither
    replace a bucket the newer one wrote nor create bucket 0."""
    k = engine.keys("race")
    older, newer = await engine._begin_create("race"), await engine._begin_create("race")
    assert newer > older
    args = await _slot_args(engine)
    await engine._create_slot("race.1", [*args, 1, newer, "r", 1, 9])
    with pytest.raises(errors.SaleExists):
        await engine._create_slot("race.1", [*args, 1, older, "r", 1, 9])
    with pytest.raises(errors.SaleExists):
        await engine._create_slot("race", [*args, 0, older, "r", 1, 9])
    assert not await engine.redis.exists(k.meta)
    await engine._create_slot("race", [*args, 0, newer, "r", 1, 9])
    with pytest.raises(errors.SaleExists):
        await engine._begin_create("race")


async def _slot_args(engine: Engine) -> list[str | int]:
    """create_sale-6's ARGV[1..17] for a 2-bucket drop "race"."""
    now = engine.clock()
    return ["race", "race", "open", now - 1000, now + 3_600_000, 1, 0, 60_000, 990, "CNY",
            "sequential", "k" * 32, "c" * 64, now, "platform", 604_800_000, 2]  # fmt: skip
