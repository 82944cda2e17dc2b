"""Quantiles of a Prometheus histogram scraped from /metrics (summed over workers).

The demo's clients see queueing on their own side too; the server's histogram
says how long each purchase took inside a worker.
"""

from __future__ import annotations

import re

_BUCKET = re.compile(r'^(?P<name>\w+)_bucket\{(?:[^}]*,)?le="(?P<le>[^"]+)"[^}]*\} (?P<v>\S+)$')


def buckets(metrics_text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of histogram ``name``, workers summed."""
    totals: dict[float, float] = {}
    for line in metrics_text.splitlines():
        match = _BUCKET.match(line)
        if match and match["name"] == name:
            bound = float("inf") if match["le"] == "+Inf" else float(match["le"])
            totals[bound] = totals.get(bound, 0.0) + float(match["v"])
    return sorted(totals.items())


def quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile, linearly interpolated inside its bucket (Prometheus' way)."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
