"""A bucketed drop's creation stopped midway (the process killed between two buckets)
leaves orphan buckets: invisible as a sale, and replaced by the retried creation of the
same id, which then sells each serial once (docs/design.md, "Bucketed drops")."""

from __future__ import annotations

import msgspec.structs as structs
import pytest

from flashsale.engine import engine as engine_module
from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import bucket_slot, creations
from flashsale.engine.models import SaleCreate, SerialsSpec

from .create_child import create_in_a_child

B = 3


async def _create_in_a_child(
    redis_url: str,
    engine: Engine,
    sale_id: str,
    crash_at: str,
    kind: str = "range",
    *,
    count: int = B,
) -> None:
    await create_in_a_child(redis_url, engine.namespace, sale_id, crash_at, count, kind)


def _spec(sale_id: str, count: int = B) -> SaleCreate:
    return SaleCreate(
        sale_id=sale_id,
        name="retried",
        serials=SerialsSpec(range=(1, 9)),
        assignment="random",
        buckets=count,
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


async def _slot_args(engine: Engine, sale_id: str = "race") -> list[str | int]:
    """create_sale-6's ARGV[1..17] for a 2-bucket drop."""
    now = engine.clock()
    return [sale_id, sale_id, "open", now - 1000, now + 3_600_000, 1, 0, 60_000, 990, "CNY",
            "sequential", "k" * 32, "c" * 64, now, "platform", 604_800_000, 2]  # fmt: skip


# -- housekeeping: orphans never retried are deleted (Engine.drop_orphan_buckets) --------


async def _bucket_keys(engine: Engine, sale_id: str, count: int = 16) -> list[int]:
    """Which of a sale's possible slots hold a bucket (meta or serials)."""
    found = []
    for b in range(count):
        k = engine.keys(bucket_slot(sale_id, b))
        if await engine.redis.exists(k.meta, k.segments, k.itemset, k.items):
            found.append(b)
    return found


async def test_housekeeping_deletes_the_orphans_of_a_creation_never_retried(
    engine: Engine, redis_url: str
) -> None:
    neighbour = await engine.create_sale(_spec("orph-nb"))  # another sale, left alone
    await _create_in_a_child(redis_url, engine, "orph-hk", "create.after_bucket_2")
    assert await _bucket_keys(engine, "orph-hk") == [1, 2]
    index = creations(engine.namespace)
    assert [m.decode() for m in await engine.redis.zrange(index, 0, -1)] == ["orph-hk 1"]
    # within the grace period the attempt may still be running: nothing is touched
    assert await engine.drop_orphan_buckets() == 0
    assert await _bucket_keys(engine, "orph-hk") == [1, 2]
    assert await engine.drop_orphan_buckets(older_than_ms=0) == 2
    assert await _bucket_keys(engine, "orph-hk") == []
    assert not await engine.redis.exists(index)
    tombstone = engine.keys("orph-hk.1").creation  # expires: nothing stays for good
    assert 0 < await engine.redis.pttl(tombstone) <= 24 * 3600 * 1000
    assert await _bucket_keys(engine, "orph-nb") == [0, 1, 2]
    assert (await engine.get_sale("orph-nb")).available == neighbour.total
    # the stopped attempt, were it to resume, is fenced: it writes neither bucket
    args = await _slot_args(engine, "orph-hk")
    for slot, b in (("orph-hk.1", 1), ("orph-hk", 0)):
        with pytest.raises(errors.SaleExists):
            await engine._create_slot(slot, [*args, b, 1, "r", 1, 9])
    assert await _bucket_keys(engine, "orph-hk") == []
    # and the id is free: created again, whole, its own index entry gone once it finished
    sale = await engine.create_sale(_spec("orph-hk"))
    assert (sale.total, sale.available) == (9, 9)
    assert await _bucket_keys(engine, "orph-hk") == [0, 1, 2]
    assert not await engine.redis.exists(index)
    assert await engine.drop_orphan_buckets(older_than_ms=0) == 0


async def test_orphans_past_a_retry_with_fewer_buckets_are_deleted_the_sale_kept(
    engine: Engine, redis_url: str
) -> None:
    """An attempt with 4 buckets stopped after bucket 3; the retry made the sale with 2: the
    old buckets 2 and 3 are nobody's, the sale's own stay whole."""
    await _create_in_a_child(redis_url, engine, "orph-4", "create.after_bucket_3", count=4)
    sale = await engine.create_sale(_spec("orph-4", count=2))
    assert await _bucket_keys(engine, "orph-4") == [0, 1, 2, 3]
    assert await engine.drop_orphan_buckets(older_than_ms=0) == 2
    assert await _bucket_keys(engine, "orph-4") == [0, 1]
    sold = [(await engine.purchase("orph-4", f"u{i}")).order for i in range(sale.total)]
    assert sorted(int(o.serial) for o in sold) == list(range(1, 10))  # type: ignore[arg-type]


async def test_housekeeping_deletes_a_stopped_lists_shares(engine: Engine, redis_url: str) -> None:
    """A bucketed list's orphans hold their shares of every segment (items, itemset): all
    of it goes."""
    await _create_in_a_child(redis_url, engine, "orph-ls", "create.after_bucket_2", "list")
    assert await _bucket_keys(engine, "orph-ls") == [1, 2]
    assert await engine.redis.hlen(engine.keys("orph-ls.1").items) > 0
    assert await engine.drop_orphan_buckets(older_than_ms=0) == 2
    assert await _bucket_keys(engine, "orph-ls") == []
