"""The cluster bench (bench/cluster.py) end to end on a private 3-master cluster and the real
PostgreSQL, tiny counts: no acknowledged order is lost on the way to PostgreSQL, the lag
is measured, each master's share adds up. Never a time: speed is the bench's own output."""

from __future__ import annotations

import pytest

from flashsale.bench.cluster import Config, bucket_fields, config_from, measure
from flashsale.bench.cluster_report import PROJECTED_CORES, per_core_rate, report
from flashsale.bench.nodes import script_calls

SALES = 12  # on 3 masters: all on one master happens once in 177,000 runs
PURCHASES = 600


async def test_the_cluster_bench_loses_no_order_and_accounts_for_every_master(
    pg_admin_url: str,
) -> None:
    cfg = Config(sales=SALES, purchases=PURCHASES, concurrency=8, max_seconds=120)
    result = await measure(pg_admin_url, cfg)

    many = result.many
    assert many.refused == {} and many.purchases == PURCHASES
    # every acknowledged order reached PostgreSQL through the persist process, nothing else
    assert many.lost == 0 and many.in_postgres == PURCHASES
    p50, p99, worst = many.lag_ms
    assert 0 <= p50 <= p99 <= worst and worst > 0
    assert many.drained_after_s >= 0
    assert len(many.masters) == 3
    assert sum(m.sales for m in many.masters) == SALES
    assert sum(m.purchases for m in many.masters) == PURCHASES
    assert sum(1 for m in many.masters if m.purchases) >= 2, "the sales did not spread"
    for master in many.masters:
        # one script call per purchase, on the master serving the sale's slot
        assert master.script_calls == master.purchases
        assert master.cpu_s > 0

    [hot] = result.hot
    assert hot.buckets == 1 and hot.purchases == PURCHASES and hot.refused == {}
    # a plain hot drop is one slot: one master ran every script, the others none
    assert sorted(m.script_calls for m in hot.masters) == [0, 0, PURCHASES]
    assert per_core_rate(hot) > 0

    text = report(result)
    for heading in (
        "### Many drops",
        "### One hot drop",
        "Many drops ÷ one hot drop, same client, same run:",
        "a projection, not a measurement",
    ):
        assert heading in text, text
    assert f"| {max(PROJECTED_CORES)} |" in text
    assert f"| {PURCHASES:,} |" in text


def test_bucket_counts_reach_sale_creation_or_are_refused_before_any_work() -> None:
    assert bucket_fields(1) == {}
    assert bucket_fields(3) == {"buckets": 3}
    assert config_from(["--buckets", "1", "--sales", "5"]) == Config(sales=5, buckets=(1,))
    assert config_from(["--buckets", "1", "2", "3"]).buckets == (1, 2, 3)
    with pytest.raises(SystemExit):
        config_from(["--buckets", "1", "17"])


def test_script_calls_add_every_script_command_that_ran_and_nothing_else() -> None:
    stats = {
        "cmdstat_evalsha": {"calls": 5, "usec": 100, "failed_calls": 1},  # a NOSCRIPT
        "cmdstat_eval": {"calls": 2, "usec": 10},
        "cmdstat_get": {"calls": 1000, "usec": 1},
    }
    assert script_calls(stats) == 6
