"""Where each serial of a list sale stands in the sale's list: 1 for the first.

Delivery on chain names a list sale's token by this position (a range sale's
token id is the serial itself, docs/design.md#delivery-on-chain). Segments keep
their order and their items' order (``k:j`` is the j-th item of segment k), so
the position is fixed once the serial is added and never changes.
"""

from __future__ import annotations

from flashsale.engine.engine import Engine
from flashsale.engine.verify import list_items, load_segments


async def list_positions(engine: Engine, sale_id: str) -> dict[str, int]:
    """Every listed serial of ``sale_id`` with its position (empty for a range sale)."""
    offsets = {seg.number: seg.offset for seg in await load_segments(engine, sale_id)}
    positions: dict[str, int] = {}
    async for field, value in list_items(engine, sale_id):  # every bucket's share
        segment, _, index = field.partition(":")
        positions[value] = offsets[int(segment)] + int(index) + 1
    return positions


__all__ = ["list_positions"]
