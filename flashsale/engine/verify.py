"""`flashsale verify SALE`: recompute which serial every draw of a random sale had to give.

The key is revealed (as ``assignment_key``) only once the sale is closed; its
SHA-256 was published from creation as ``assignment_commitment``. With both,
anyone recomputes each draw: draw ``d`` falls in segment ``k`` at offset ``j``
and gives ``lo + permute(j, size, f"{key}:{k}")`` (a list segment: its j-th
item). Serials released by cancel/expire are resold first, outside the draw
sequence (their orders carry no draw number).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import msgspec

from flashsale.engine.codec import text
from flashsale.engine.engine import Engine
from flashsale.engine.errors import SaleNotFound
from flashsale.engine.permutation import permute


class Segment(msgspec.Struct, frozen=True):
    number: int
    kind: str  # "r" range, "l" list
    lo: int
    size: int
    offset: int


class VerifyReport(msgspec.Struct, kw_only=True):
    sale_id: str
    ok: bool
    checked: int = 0
    resold: int = 0
    mismatches: list[str] = msgspec.field(default_factory=list)
    reason: str | None = None


def expected_serial(draw: int, segments: list[Segment], key: str, items: dict[str, str]) -> str:
    """The serial draw number ``draw`` must give, from public data and the revealed key."""
    for seg in segments:
        if seg.offset <= draw < seg.offset + seg.size:
            j = permute(draw - seg.offset, seg.size, f"{key}:{seg.number}")
            return str(seg.lo + j) if seg.kind == "r" else items[f"{seg.number}:{j}"]
    raise ValueError(f"draw {draw} is outside every segment")


def _text(value: bytes | str | None) -> str:
    if value is None:
        raise ValueError("segment metadata is missing")
    return text(value)


async def load_segments(engine: Engine, sale_id: str) -> list[Segment]:
    k = engine.keys(sale_id)
    count = int(await engine.redis.hget(k.meta, "segments") or 0)
    segments = []
    for n in range(1, count + 1):
        kind, lo, size, offset = await engine.redis.hmget(
            k.segments, [f"{n}:kind", f"{n}:lo", f"{n}:size", f"{n}:off"]
        )
        segments.append(
            Segment(n, _text(kind), int(_text(lo)), int(_text(size)), int(_text(offset)))
        )
    return segments


async def list_items(engine: Engine, sale_id: str) -> AsyncIterator[tuple[str, str]]:
    """Every stored item of a list sale as ("k:j", serial): item j of segment k. A
    bucketed drop keeps each item in the one bucket whose window draws it (create_sale
    and load_serials-5), so the list is the union of its buckets' items."""
    for slot in await engine.slots(sale_id):
        async for field, value in engine.redis.hscan_iter(engine.keys(slot).items, count=5000):
            yield text(field), text(value)


async def verify_sale(engine: Engine, sale_id: str) -> VerifyReport:
    sale = await engine.get_sale(sale_id)  # raises SaleNotFound
    if sale.assignment != "random":
        return VerifyReport(
            sale_id=sale_id,
            ok=True,
            reason="sequential assignment: serials are drawn in order, nothing to recompute",
        )
    if sale.assignment_key is None:
        return VerifyReport(
            sale_id=sale_id, ok=False, reason="the key is revealed only once the sale is closed"
        )
    key = sale.assignment_key
    if hashlib.sha256(key.encode()).hexdigest() != sale.assignment_commitment:
        return VerifyReport(sale_id=sale_id, ok=False, reason="key does not match the commitment")
    segments = await load_segments(engine, sale_id)
    items: dict[str, str] = {}
    if any(seg.kind == "l" for seg in segments):
        items = {field: value async for field, value in list_items(engine, sale_id)}
    report = VerifyReport(sale_id=sale_id, ok=True)
    for order in await engine.orders_of_sale(sale_id):
        if order.draw is None:
            report.resold += 1
            continue
        report.checked += 1
        want = expected_serial(order.draw, segments, key, items)
        if str(order.serial) != want:
            report.mismatches.append(
                f"order {order.order_id}: draw {order.draw} gave {order.serial}, expected {want}"
            )
    report.ok = not report.mismatches
    return report


__all__ = [
    "SaleNotFound",
    "Segment",
    "VerifyReport",
    "expected_serial",
    "list_items",
    "verify_sale",
]
