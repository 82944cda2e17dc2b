"""Redis keys of the write-behind, in the sale's slot (same ``{sale:<id>}`` hash tag).

Their names are built in ``flashsale.engine.keys.SaleKeys`` with every other
key; the consumer group itself lives on ``SaleKeys.events``.
"""

from __future__ import annotations

from flashsale.engine.keys import SaleKeys

GROUP = "persist"


def dead_letters(keys: SaleKeys) -> str:
    """Stream of entries given up on after too many deliveries, each with its reason."""
    name: str = keys.persist_dead
    return name


def failures(keys: SaleKeys) -> str:
    """Hash stream-id -> last reason a delivery of that entry failed (until acked)."""
    name: str = keys.persist_failures
    return name
