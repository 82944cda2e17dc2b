"""The demo's hot drop: bucketed on a cluster (one bucket per master), one slot otherwise."""

from __future__ import annotations

import msgspec

from flashsale.engine.models import SaleCreate
from flashsale.loadtest import demo


def test_the_cluster_demo_drop_is_bucketed_and_a_valid_sale() -> None:
    body = demo.drop_body("demo-x", 60, 25, demo.CLUSTER_BUCKETS)
    assert body["buckets"] == 3
    assert msgspec.convert(body, SaleCreate, strict=False).buckets == 3  # the API accepts it
    assert "buckets" not in demo.drop_body("demo-x", 60, 25, 1)
