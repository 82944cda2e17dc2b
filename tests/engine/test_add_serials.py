"""``add_serials`` of a long list goes in chunks like creation's, all or nothing up front."""

from __future__ import annotations

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import LIST_CHUNK, Engine
from flashsale.engine.models import SaleUpdate, SerialsSpec

from .helpers import assert_invariants, make_sale

N = 2 * LIST_CHUNK + 5_000  # three script calls


async def _added_per_call(engine: Engine, sale_id: str) -> list[int]:
    entries = await engine.redis.xrange(engine.keys(sale_id).events)
    return [int(fields[b"added"]) for _, fields in entries if b"added" in fields]


async def test_a_long_list_is_added_in_chunks(engine: Engine) -> None:
    await make_sale(engine, "chunks", serials=SerialsSpec(list=["first"]))
    items = [f"S-{i}" for i in range(N)]
    sale = await engine.tune("chunks", SaleUpdate(add_serials=SerialsSpec(list=items)))
    assert sale.total == N + 1 and sale.available == N + 1
    assert await _added_per_call(engine, "chunks") == [LIST_CHUNK, LIST_CHUNK, 5_000]
    bought = {str((await engine.purchase("chunks", f"u{i}")).order.serial) for i in range(3)}
    assert bought == {"first", "S-0", "S-1"}
    await assert_invariants(engine, "chunks")


async def test_a_known_serial_anywhere_in_the_list_refuses_it_all(engine: Engine) -> None:
    await make_sale(engine, "dup", serials=SerialsSpec(list=["A", "Z"]))
    items = [f"S-{i}" for i in range(N - 1)] + ["Z"]  # known, in the last chunk
    with pytest.raises(errors.SerialsRefused, match="Z"):
        await engine.tune("dup", SaleUpdate(add_serials=SerialsSpec(list=items)))
    assert (await engine.get_sale("dup")).total == 2
    assert await _added_per_call(engine, "dup") == []
