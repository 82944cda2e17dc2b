"""The worker processes' series, read at scrape time from the counters they keep anyway.

Every series is a sum over the live objects a process ``watching()``s (one per
write-behind consumer, one Timers, one Deliverer), so a process with several
consumers exports one number per series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class Series:
    attribute: str  # read on each watched object, summed
    name: str
    help: str
    gauge: bool = False


class StatsCollector(Collector):
    """Series summed over the objects being watched (none: every series reads 0)."""

    def __init__(self, series: Iterable[Series]) -> None:
        self.series = tuple(series)
        self._sources: list[object] = []

    @contextmanager
    def watching(self, *sources: object) -> Iterator[None]:
        self._sources.extend(sources)
        try:
            yield
        finally:
            for source in sources:
                self._sources.remove(source)

    def collect(self) -> Iterable[Metric]:
        sources = list(self._sources)
        for item in self.series:
            value = float(sum(_read(source, item.attribute) for source in sources))
            family: Callable[..., Metric] = GaugeMetricFamily if item.gauge else CounterMetricFamily
            yield family(item.name, item.help, value=value)

    def names(self) -> list[str]:
        """The exposed names (counters with their ``_total``), for the dashboard's test."""
        return [s.name if s.gauge else f"{s.name}_total" for s in self.series]


def _read(source: object, attribute: str) -> float:
    value: Any = getattr(source, attribute)
    return float(value() if callable(value) else value)


def _series(
    prefix: str, counters: dict[str, str], gauges: dict[str, str] | None = None
) -> list[Series]:
    """``attribute: help`` pairs; each series is named ``<prefix>_<attribute>``."""
    found = [Series(a, f"{prefix}_{a}", text) for a, text in counters.items()]
    found += [Series(a, f"{prefix}_{a}", text, gauge=True) for a, text in (gauges or {}).items()]
    return found


PERSIST = StatsCollector(
    _series(
        "flashsale_persist",
        {
            "batches": "Batches written to PostgreSQL.",
            "entries": "Stream entries persisted and acknowledged (or dead-lettered).",
            "reclaimed": "Entries taken over from a dead consumer.",
            "dead_lettered": "Entries set aside after failing too often (each needs an operator).",
            "failed_deliveries": "Entries a batch could not write, left for a later attempt.",
            "pg_retries": "Batch writes tried again after PostgreSQL refused or went away.",
            "trimmed": "Persisted entries trimmed from streams.",
            "vanished": "Pending entries deleted from a stream before being persisted.",
        },
    )
)

TIMERS = StatsCollector(
    _series(
        "flashsale_timers",
        {
            "ticks": "Rounds of the timers.",
            "expired": "Unpaid orders expired (serial returned).",
            "expiry_deferred": "Expiries put off: the provider still had the payment in flight.",
            "queried": "Payments asked of the provider (lost callbacks).",
            "repaired": "Payments repaired from the database.",
            "refunds": "Refunds executed on a retry.",
            "errors": "Timer steps that failed (see the log).",
        },
    )
)

DELIVER = StatsCollector(
    _series(
        "flashsale_deliver",
        {
            "ticks": "Rounds of the deliverer.",
            "tick_errors": "Rounds that failed (see the log).",
            "submitted": "Mint transactions sent.",
            "confirmed": "Deliveries confirmed on chain.",
            "failed": "Deliveries given up (an alert each).",
            "requeued": "Mints dropped or reorged, queued again.",
        },
        {
            "in_flight": "Mint transactions sent and not yet confirmed.",
            "chain_unreachable": "1 while the chain's node does not answer.",
            "given_up": "Deliveries given up and not asked again (orders paid, undelivered).",
        },
    )
)
