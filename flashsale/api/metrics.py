"""Prometheus metrics, correct with several worker processes.

``flashsale serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh temporary
directory before any worker starts; each worker then writes its counters to
memory-mapped files there and whichever worker answers ``GET /metrics``
aggregates all of them (prometheus_client multiprocess mode). Without the
variable (tests, a single process) the ordinary in-memory registry is used.

The request path pays a counter increment, not a metric update: counts and
observations wait in this process's memory (``count``, ``observe``) and reach
the metric values once a second (each worker's ``flush_every`` task), at every
scrape this worker answers, and when the worker stops. A scrape may so miss up
to a second of another worker's requests; in multiprocess mode every update is
a write to a shared memory map under a lock, which cost more than the purchase's
own Python work.

Values known only at scrape time (the write-behind's lag, from
``flashsale.store.lag.lag``) are computed then, in a registry of their own,
and appended.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from litestar.types import HTTPScope
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

if TYPE_CHECKING:
    from flashsale.store.lag import StreamLag

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
    "outcome_unknown",
)
# Children bound once: ``labels()`` is a dict lookup plus a lock per call.
_PURCHASE_CHILD = {outcome: PURCHASES.labels(outcome) for outcome in PURCHASE_OUTCOMES}


# Counter child -> increments not yet applied; histogram child -> [sum, count per bucket...]
_COUNTS: dict[Any, int] = {}
_OBSERVED: dict[Any, list[float]] = {}
FLUSH_S = 1.0


def count(child: Any) -> None:
    """One more on a counter (or a counter child), applied at the next flush."""
    _COUNTS[child] = _COUNTS.get(child, 0) + 1


def observe(child: Any, seconds: float) -> None:
    """One observation of a histogram child with ``_BUCKETS``, applied at the next flush."""
    pending = _OBSERVED.get(child)
    if pending is None:
        pending = _OBSERVED[child] = [0.0] * (len(_BUCKETS) + 1)
    pending[0] += seconds
    pending[1 + bisect_left(_BUCKETS, seconds)] += 1  # the first bucket whose bound holds it


def flush() -> None:
    """Apply what waited in memory to the metric values (shared files in multiprocess mode)."""
    counts, observed = list(_COUNTS.items()), list(_OBSERVED.items())
    _COUNTS.clear()
    _OBSERVED.clear()
    for child, n in counts:
        child.inc(n)
    for child, pending in observed:
        # Histogram.observe's own two steps (its sum, then the one bucket), n at a time
        child._sum.inc(pending[0])
        for bucket, times in zip(child._buckets, pending[1:], strict=True):
            if times:
                bucket.inc(times)


async def flush_every(interval_s: float = FLUSH_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        flush()


def count_purchase(outcome: str) -> None:
    child = _PURCHASE_CHILD.get(outcome)
    if child is None:
        child = _PURCHASE_CHILD[outcome] = PURCHASES.labels(outcome)
    count(child)


HTTP_REQUESTS = Counter(
    "flashsale_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "flashsale_http_request_seconds",
    "Time to answer an HTTP request inside the worker, by route template and method.",
    ["route", "method"],
    buckets=_BUCKETS,
)
UNMATCHED = "unmatched"  # no route: 404 and the like (the path itself would be unbounded)
# a client may send any method: the others are counted as one, to bound the label's values
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _RouteChildren:
    """One route and method's histogram child and its counter child per status."""

    __slots__ = ("by_status", "method", "route", "seconds")

    def __init__(self, route: str, method: str) -> None:
        self.route, self.method = route, method
        self.seconds = HTTP_SECONDS.labels(route, method)
        self.by_status: dict[int, Any] = {}

    def count(self, status: int) -> None:
        child = self.by_status.get(status)
        if child is None:
            child = self.by_status[status] = HTTP_REQUESTS.labels(
                self.route, self.method, str(status)
            )
        count(child)


# route template -> method -> children: bound once, then two dict lookups per request
_HTTP_CHILDREN: dict[str, dict[str, _RouteChildren]] = {}


def observe_http(scope: HTTPScope, status: int, seconds: float) -> None:
    """Count one answered request under its route template (``/v1/sales/{sale_id}``)."""
    route: str = scope.get("path_template") or UNMATCHED  # set by Litestar's router
    method: str = scope["method"]
    if method not in METHODS:
        method = "OTHER"
    by_method = _HTTP_CHILDREN.get(route)
    if by_method is None:
        by_method = _HTTP_CHILDREN[route] = {}
    children = by_method.get(method)
    if children is None:
        children = by_method[method] = _RouteChildren(route, method)
    children.count(status)
    observe(children.seconds, seconds)


class _ScrapeTime(Collector):
    def __init__(self, lags: list[StreamLag] | None, named: set[str] | None) -> None:
        self._lags = lags
        self._named = named

    def collect(self) -> Iterable[Metric]:
        per_sale = GaugeMetricFamily(
            "flashsale_stream_lag",
            "Entries of a sale's stream not yet persisted by the write-behind "
            "(pending or never delivered).",
            labels=["sale_id"],
        )
        oldest = GaugeMetricFamily(
            "flashsale_stream_lag_oldest_age_seconds",
            "Age of the oldest entry of a sale's stream not yet persisted (0: none).",
            labels=["sale_id"],
        )
        for item in sorted(self._lags or [], key=lambda item: item.sale_id):
            if self._named is not None and item.sale_id not in self._named:
                continue  # counted in the total, never named
            per_sale.add_metric([item.sale_id], item.entries)
            oldest.add_metric([item.sale_id], item.oldest_age_ms / 1000)
        yield per_sale
        yield oldest
        if self._lags is not None:  # unknown (Redis too slow): absent rather than 0
            yield GaugeMetricFamily(
                "flashsale_write_behind_lag",
                "Stream entries not yet persisted, all sales together.",
                value=sum(item.entries for item in self._lags),
            )


def exposition(lags: list[StreamLag] | None, named: set[str] | None = None) -> tuple[bytes, str]:
    """The text exposition of every worker's metrics plus the scrape-time gauges.

    ``named``: the sales whose id may appear as a label (None: all); the others
    count in the total only (public metrics name no drop before its opening).
    """
    flush()  # this worker's own counts are never late
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    scrape = CollectorRegistry()
    scrape.register(_ScrapeTime(lags, named))
    return body + generate_latest(scrape), CONTENT_TYPE_LATEST
