"""The demo's burst as the load test's records tell it (hand-made records: no server, no
locust; tests/loadtest/test_demo.py runs the real one)."""

from __future__ import annotations

from pathlib import Path

from flashsale.loadtest.burst import BurstResult
from flashsale.loadtest.demo_burst import Burst, burst_options
from flashsale.loadtest.runner import LocustStats
from flashsale.loadtest.seen import Bought, Seen

OPENS = 1_000.0


def burst(seen: Seen, rc: int = 0, tmp: Path = Path("/nonexistent")) -> Burst:
    opts = burst_options("http://x", buyers=4, serials=10, processes=2, reports_dir=tmp)
    stats = LocustStats({"purchase": {"50%": 12, "99%": 340, "Request Count": 4}})
    return Burst(opts, seen, stats, OPENS, rc, BurstResult.from_seen(seen, 9900))


def clean() -> Seen:
    seen = Seen(attempts=4, buyers=4)
    seen.bought = [
        Bought("s.2", "7", "buyer-00001", received_at=OPENS + 0.2),
        Bought("s.1", "3", "buyer-00000", received_at=OPENS + 0.1),
        Bought("s.1", "3", "buyer-00000", received_at=OPENS + 0.3, replayed=True),
    ]
    seen.refused["sold_out"] = 2
    seen.requests["purchase"] = 4
    for i in range(4):
        seen.record_sent(OPENS + i / 10)
    return seen


def test_the_sold_orders_are_those_given_as_new_in_the_order_they_came() -> None:
    result = BurstResult.from_seen(clean(), 9900)
    assert [o["order_id"] for o in result.sold] == ["s.1", "s.2"]  # the replay is no sale
    assert result.sold[0] == {
        "order_id": "s.1",
        "serial": "3",
        "_buyer": "buyer-00000",
        "price_cents": 9900,  # the demo's wallet payments top up exactly the price
    }
    assert result.attempts == 4 and result.refused["sold_out"] == 2


def test_a_clean_burst_has_no_violation_and_prints_the_load_tests_figures() -> None:
    done = burst(clean())
    assert done.violations() == []
    clients, opening, generator = done.lines()
    # 4 purchases sent from the first tick to the last: 0.4 s
    assert clients == (
        "the clients: 4 locust users over 2 processes sent 4 purchases in 0.4 s, 10/s · "
        "purchase p50 12 ms · p99 340 ms"
    )
    assert opening.startswith("opening second: 4 purchases sent in it · busiest second 4")
    assert generator.startswith("load generator: ")


def test_what_the_clients_saw_go_wrong_is_a_violation_of_the_demo() -> None:
    twice = clean()
    twice.bought.append(Bought("s.3", "7", "buyer-00002", received_at=OPENS + 0.4))
    assert burst(twice).violations() == ["serial 7 sold to 2 orders"]
    over = clean()
    over.bought.append(Bought("s.4", "9", "buyer-00000", received_at=OPENS + 0.4))
    assert burst(over).violations() == ["buyer buyer-00000 holds 2 orders (limit 1)"]
    assert burst(clean(), rc=-9).violations() == ["locust did not finish its run (exit -9)"]


def test_a_locust_that_recorded_nothing_fails_the_demo(tmp_path: Path) -> None:
    found = burst(Seen(), tmp=tmp_path).violations()
    assert "no purchase succeeded" in found
    assert f"locust recorded nothing: see {tmp_path / 'burst' / 'locust.log'}" in found
