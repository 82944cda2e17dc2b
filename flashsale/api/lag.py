"""Write-behind lag as the HTTP layer reports it: the store's ``lag()``, bounded per call.

``flashsale.store.lag.lag`` is the one definition (per sale: stream entries
not yet persisted, pending or never delivered, and the age of the oldest);
``/health``, ``/metrics`` and ``flashsale sale watch`` read it through here.
"""

from __future__ import annotations

from flashsale.engine.engine import Engine
from flashsale.store.lag import StreamLag, lag

MAX_SALES = 1000  # bounded work per scrape


async def sale_lags(engine: Engine, sale_ids: list[str] | None = None) -> list[StreamLag]:
    """Lag of the given sales, or of every sale (the first ``MAX_SALES``)."""
    found: list[StreamLag] = []
    if sale_ids is None:
        found = await lag(engine.redis, engine.namespace, max_sales=MAX_SALES)
        return found
    for sale_id in sale_ids[:MAX_SALES]:
        found.extend(await lag(engine.redis, engine.namespace, sale_id))
    return found


async def stream_lags(engine: Engine, sale_ids: list[str] | None = None) -> dict[str, int]:
    """Entries not yet persisted, by sale."""
    return {item.sale_id: item.entries for item in await sale_lags(engine, sale_ids)}
