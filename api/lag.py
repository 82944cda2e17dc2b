"""Write-behind lag as Redis sees it: events of each sale's stream not yet acknowledged.

For every sale: the events its consumer group has not read yet (``lag``) plus
those read but not acknowledged (``pending``); a stream no consumer group has
read yet lags by its whole length.

TODO(store): once ``flashsale.store`` is on main, ``/health`` and ``/metrics``
also report its lag function (acknowledged orders not yet in PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from flashsale.engine.engine import Engine

MAX_SALES = 1000  # bounded work per scrape


def _lag_of(groups: Any, length: Any) -> int:
    if isinstance(groups, Exception) or isinstance(length, Exception):
        return 0
    if not groups:
        return int(length or 0)
    worst = 0
    for group in groups:
        lag = group.get("lag")
        if lag is None:  # undetermined (entries deleted): count what was never read
            lag = max(0, int(length or 0) - int(group.get("entries-read") or 0))
        worst = max(worst, int(lag) + int(group.get("pending") or 0))
    return worst


async def stream_lags(engine: Engine, sale_ids: list[str] | None = None) -> dict[str, int]:
    ids = (await engine.sale_ids() if sale_ids is None else sale_ids)[:MAX_SALES]
    if not ids:
        return {}
    pipe = engine.redis.pipeline(transaction=False)
    for sale_id in ids:
        events = engine.keys(sale_id).events
        pipe.xinfo_groups(events)
        pipe.xlen(events)
    replies = await pipe.execute(raise_on_error=False)
    return {sale_id: _lag_of(replies[2 * i], replies[2 * i + 1]) for i, sale_id in enumerate(ids)}
