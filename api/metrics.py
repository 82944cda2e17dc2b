"""Prometheus metrics, correct with several worker processes.

``flashsale serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh temporary
directory before any worker starts; each worker then writes its counters to
memory-mapped files there and whichever worker answers ``GET /metrics``
aggregates all of them (prometheus_client multiprocess mode). Without the
variable (tests, a single process) the ordinary in-memory registry is used.

Values known only at scrape time (write-behind stream lag) are computed then,
in a registry of their own, and appended.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
disable_created_metrics()  # type: ignore[no-untyped-call]

PURCHASES = Counter(
    "flashsale_purchases",
    "Purchase attempts by outcome: created, replayed or the refusal code.",
    ["outcome"],
)
SOLD_OUT_SHORT_CIRCUIT = Counter(
    "flashsale_sold_out_short_circuit",
    "Purchases answered sold_out from a worker's memory, without Redis.",
)
# Buckets for a hot path measured in hundreds of microseconds to a few milliseconds.
_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"),
)  # fmt: skip
PURCHASE_SECONDS = Histogram(
    "flashsale_purchase_seconds",
    "Time to answer a purchase inside the worker (token, engine round trip, response).",
    buckets=_BUCKETS,
)
ENGINE_SECONDS = Histogram(
    "flashsale_engine_call_seconds",
    "Time of one engine call (Redis round trip, shared with the calls pipelined with it).",
    ["op"],
    buckets=_BUCKETS,
)
RATE_LIMITED = Counter(
    "flashsale_rate_limited",
    "Requests refused by the per-client-IP request rate limit.",
)

PURCHASE_OUTCOMES = (
    "created",
    "replayed",
    "sold_out",
    "limit_reached",
    "sale_not_open",
    "sale_paused",
    "sale_closed",
    "sale_not_found",
    "idempotency_key_reused",
    "engine_unavailable",
)
# Children bound once: ``labels()`` is a dict lookup plus a lock per call.
_PURCHASE_CHILD = {outcome: PURCHASES.labels(outcome) for outcome in PURCHASE_OUTCOMES}
PURCHASE_ENGINE_SECONDS = ENGINE_SECONDS.labels("purchase")


def count_purchase(outcome: str) -> None:
    child = _PURCHASE_CHILD.get(outcome)
    if child is None:
        child = _PURCHASE_CHILD[outcome] = PURCHASES.labels(outcome)
    child.inc()


class _ScrapeTime(Collector):
    def __init__(self, lag_by_sale: dict[str, int], total_lag: int | None) -> None:
        self._lag_by_sale = lag_by_sale
        self._total = total_lag

    def collect(self) -> Iterable[Metric]:
        per_sale = GaugeMetricFamily(
            "flashsale_stream_lag",
            "Events of a sale's stream not yet acknowledged by the write-behind.",
            labels=["sale_id"],
        )
        for sale_id, lag in sorted(self._lag_by_sale.items()):
            per_sale.add_metric([sale_id], lag)
        yield per_sale
        if self._total is not None:
            yield GaugeMetricFamily(
                "flashsale_write_behind_lag",
                "Acknowledged events not yet persisted, all sales together.",
                value=self._total,
            )


def exposition(lag_by_sale: dict[str, int], total_lag: int | None) -> tuple[bytes, str]:
    """The text exposition of every worker's metrics plus the scrape-time gauges."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    scrape = CollectorRegistry()
    scrape.register(_ScrapeTime(lag_by_sale, total_lag))
    return body + generate_latest(scrape), CONTENT_TYPE_LATEST
