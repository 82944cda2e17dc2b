"""The bucketed-drop bench, small: a drop of 1 bucket loads one master, of 3 buckets all
three, and every serial is sold in each run."""

from __future__ import annotations

from flashsale.bench.buckets import report, run_all


async def test_buckets_spread_one_hot_drop_over_the_masters() -> None:
    results = await run_all([1, 3], orders=300, runs=1)
    [one], [three] = results[1], results[3]
    assert max(one.shares) > 0.95  # one slot: one master does the work
    assert min(three.shares) > 0.2  # three buckets on three masters: each does a third
    assert one.rate > 0 and three.rate > 0
    assert "| 3 |" in report(results)
