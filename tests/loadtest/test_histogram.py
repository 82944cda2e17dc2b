"""Quantiles from a scraped Prometheus histogram (pure unit test)."""

from __future__ import annotations

import pytest

from flashsale.loadtest.histogram import buckets, quantile

TEXT = """\
# TYPE flashsale_purchase_seconds histogram
flashsale_purchase_seconds_bucket{le="0.001",pid="1"} 10.0
flashsale_purchase_seconds_bucket{le="0.01",pid="1"} 90.0
flashsale_purchase_seconds_bucket{le="+Inf",pid="1"} 100.0
flashsale_purchase_seconds_bucket{le="0.001",pid="2"} 0.0
flashsale_purchase_seconds_bucket{le="0.01",pid="2"} 10.0
flashsale_purchase_seconds_bucket{le="+Inf",pid="2"} 100.0
other_bucket{le="0.001"} 5.0
"""


def test_workers_are_summed_and_quantiles_interpolated() -> None:
    cumulative = buckets(TEXT, "flashsale_purchase_seconds")
    assert cumulative == [(0.001, 10.0), (0.01, 100.0), (float("inf"), 200.0)]
    assert quantile(cumulative, 0.5) == pytest.approx(0.01)
    assert quantile(cumulative, 0.25) == pytest.approx(0.001 + 0.009 * (40 / 90))
    assert quantile(cumulative, 0.99) == pytest.approx(0.01)  # in +Inf: its lower bound
    assert quantile([], 0.5) is None
