"""Redis keys of the write-behind, in the sale's slot (same ``{sale:<id>}`` hash tag).

They extend ``flashsale.engine.keys.SaleKeys`` (which names every engine key);
the consumer group itself lives on ``SaleKeys.events``.
"""

from __future__ import annotations

from flashsale.engine.keys import SaleKeys

GROUP = "persist"


def dead_letters(keys: SaleKeys) -> str:
    """Stream of entries given up on after too many deliveries, each with its reason."""
    return f"{keys.tag}:persist:dead"


def failures(keys: SaleKeys) -> str:
    """Hash: ``<stream id>`` -> last reason a delivery failed, ``<id>#n`` -> failed deliveries."""
    return f"{keys.tag}:persist:failures"
