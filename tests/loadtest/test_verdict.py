"""The verdict's client-side checks, on hand-made records (no server, no locust)."""

from __future__ import annotations

import time
from pathlib import Path

from flashsale.loadtest.burst import BurstResult, Holding, holding_violations
from flashsale.loadtest.generator import generator_lines
from flashsale.loadtest.options import Options
from flashsale.loadtest.runner import sale_body
from flashsale.loadtest.seen import Bought, Seen, cpu_seconds
from flashsale.loadtest.verdict import judge, to_read_back

CLEAN_AUDIT = {"ok": True, "violations": [], "persisted": 3, "lag": 0}


def sale(total: int = 10, sold: int = 0, reserved: int = 0) -> dict[str, int]:
    return {
        "total": total,
        "sold": sold,
        "reserved": reserved,
        "available": total - sold - reserved,
    }


def opts(scenario: str = "drop", serials: int = 10) -> Options:
    return Options(scenario=scenario, host="http://x", users=10, serials=serials).resolve()


def test_a_serial_held_twice_at_once_is_a_violation() -> None:
    found = holding_violations(
        [Holding("a", "7", "u1", acquired=1.0), Holding("b", "7", "u2", acquired=2.0)], 1
    )
    assert found == ["serial 7 sold to 2 orders"]


def test_a_serial_resold_after_its_release_is_fine() -> None:
    first = Holding("a", "7", "u1", acquired=1.0, released=5.0)
    assert holding_violations([first, Holding("b", "7", "u2", acquired=6.0)], 1) == []
    # bought again before the first order could have been released: two live orders
    assert holding_violations([first, Holding("b", "7", "u2", acquired=4.0)], 1) != []
    # within the clock-skew tolerance: not certain, not reported
    assert holding_violations([first, Holding("b", "7", "u2", acquired=4.0)], 1, skew_s=2) == []


def test_buyer_and_address_limits() -> None:
    held = [Holding(f"o{i}", str(i), "u1", ip="10.0.0.1", acquired=i) for i in range(3)]
    assert holding_violations(held, 2) == ["buyer u1 holds 3 orders (limit 2)"]
    assert holding_violations(held, 3, per_ip_limit=2) == [
        "address 10.0.0.1 holds 3 orders (limit 2)"
    ]
    # the same order seen twice (a replay) is one order
    assert holding_violations([held[0], held[0]], 1) == []


def test_burst_result_checks_live_orders() -> None:
    result = BurstResult(
        sold=[
            {"order_id": "a", "serial": 1, "_buyer": "u1"},
            {"order_id": "b", "serial": 1, "_buyer": "u1"},
        ]
    )
    assert result.violations(1, {"a": "expired", "b": "paid"}) == []
    assert result.violations(1, {"a": "paid", "b": "paid"}) == [
        "serial 1 held by 2 live orders",
        "buyer u1 holds 2 live orders (limit 1)",
    ]


def test_seen_round_trip_and_merge(tmp_path: Path) -> None:
    seen = Seen(attempts=2, bought=[Bought("s.1", "3", "u1", received_at=1.0)])
    seen.refused["sold_out"] += 1
    seen.write(tmp_path)
    back = Seen.load_dir(tmp_path)
    assert back.attempts == 2 and back.refused["sold_out"] == 1
    assert back.orders()["s.1"].serial == "3"


def test_judge_joins_audit_and_clients() -> None:
    seen = Seen(attempts=3, bought=[Bought("s.1", "3", "u1", received_at=1.0)])
    seen.requests["purchase"] = 3
    assert judge(opts(), seen, CLEAN_AUDIT, sale(reserved=1), "settled", {}) == []
    # the server says all is well, the clients saw one serial in two live orders
    twice = Seen(bought=[*seen.bought, Bought("s.2", "3", "u2", received_at=2.0)])
    assert "serial 3 sold to 2 orders" in judge(opts(), twice, CLEAN_AUDIT, sale(), "", {})
    # an order a client was given that PostgreSQL does not hold
    lost = judge(opts(), seen, {**CLEAN_AUDIT, "persisted": 0}, sale(), "", {})
    assert lost == ["clients were given 1 orders, PostgreSQL holds 0"]
    # audit violations (store shape), lag, no audit at all
    bad = {"ok": False, "violations": [{"code": "oversold", "detail": "x"}], "lag": 2}
    found = judge(opts(), seen, bad, sale(), "lag 2", {})
    assert "audit: oversold: x" in found and any("did not drain" in f for f in found)
    assert judge(opts(), seen, None, sale(), "503", {}) == ["the audit did not answer (503)"]


def test_judge_errors_and_bots() -> None:
    seen = Seen(bought=[Bought("s.1", "3", "u1", received_at=1.0)])
    seen.requests["purchase"] = 100
    seen.errors["500 purchase"] = 5
    assert any(
        "5 of 100 requests failed" in f for f in judge(opts(), seen, CLEAN_AUDIT, sale(), "", {})
    )
    quiet = Seen(bought=seen.bought)
    assert judge(opts("bots", 1000), quiet, CLEAN_AUDIT, sale(1000), "", {}) == [
        "the bots were never refused with limit_reached or rate_limited"
    ]
    quiet.bought[0].paid = "balance"
    paid = judge(opts(), quiet, CLEAN_AUDIT, sale(1 + 9, sold=1), "", {"s.1": "expired"})
    assert paid == ["order s.1 was paid from a wallet but is expired"]


def test_a_bucketed_run_checks_its_buckets_and_the_exact_address_limit() -> None:
    bucketed = Options(scenario="bots", host="http://x", users=3, serials=10, buckets=2).resolve()
    assert sale_body(bucketed, "lt-x")["buckets"] == 2
    assert "buckets" not in sale_body(opts(), "lt-x")
    seen = Seen(bought=[Bought(f"s.{i}", str(i), f"u{i}", ip="1.2.3.4") for i in (1, 2, 3)])
    seen.refused["limit_reached"] = 1
    two = {**sale(reserved=3), "buckets": 2}
    # per-IP limit 2, exact over the buckets: 3 orders of one address break it
    assert judge(bucketed, seen, CLEAN_AUDIT, two, "", {}) == [
        "address 1.2.3.4 holds 3 orders (limit 2)"
    ]
    within = Seen(bought=seen.bought[:2], refused=seen.refused)
    assert (
        judge(bucketed, within, CLEAN_AUDIT, {**two, "reserved": 2, "available": 8}, "", {}) == []
    )
    # a server that ignored "buckets" made a one-bucket sale: the run says so
    found = judge(bucketed, within, CLEAN_AUDIT, {**sale(reserved=2)}, "", {})
    assert found == ["the sale has 1 buckets, asked for 2"]


def test_a_dead_payment_path_fails_the_run() -> None:
    seen = Seen(bought=[Bought("s.1", "3", "u1", received_at=1.0)])
    seen.requests["purchase"] = 1
    seen.payments.update({"balance refused order_not_payable": 97, "provider pay_url ok": 3})
    assert judge(opts(), seen, CLEAN_AUDIT, sale(reserved=1), "", {}) == [
        "every balance payment failed (balance refused order_not_payable 97)"
    ]
    seen.payments["balance succeeded"] = 1  # one worked: the path is alive
    assert judge(opts(), seen, CLEAN_AUDIT, sale(reserved=1), "", {}) == []
    # locust exits 1 for failed requests (judged by the error rate), anything else is a crash
    assert judge(opts(), seen, CLEAN_AUDIT, sale(reserved=1), "", {}, locust_rc=1) == []
    assert judge(opts(), seen, CLEAN_AUDIT, sale(reserved=1), "", {}, locust_rc=-9) == [
        "locust did not finish its run (exit -9)"
    ]


def test_wallet_buyers_are_a_share_of_the_serials_of_a_drop() -> None:
    drop = Options(scenario="drop", host="http://x", users=5000, serials=500).resolve()
    assert drop.payers == 100 and drop.payer_prefix == f"{drop.run}-payer-"
    assert opts("bots", 1000).payers == 0


def test_final_states_read_back() -> None:
    # one serial given twice, far apart in time (the first order's deadline had passed):
    # the client-side timing check cannot tell, the final states can
    seen = Seen(
        bought=[
            Bought("s.1", "3", "u1", received_at=1.0, expires_at=2.0),
            Bought("s.2", "3", "u2", received_at=9.0, expires_at=20.0),
        ]
    )
    assert to_read_back(seen, 1) == ["s.1", "s.2"]
    assert judge(opts(), seen, CLEAN_AUDIT, sale(), "", {"s.1": "expired", "s.2": "paid"}) == []
    both = judge(opts(), seen, CLEAN_AUDIT, sale(), "", {"s.1": "paid", "s.2": "paid"})
    assert both == ["serial 3 held by 2 live orders"]


def test_the_opening_second_and_a_saturated_client_are_reported(tmp_path: Path) -> None:
    opens = 1_000.0
    one, two = Seen(), Seen()
    for i in range(30):  # 30 sent in the opening second, across two processes
        (one if i % 2 else two).record_sent(opens + i / 30)
    two.record_sent(opens + 1.5)  # and one after it
    one.processes, two.processes = [(9.5, 10.0)], [(2.0, 10.0)]
    merged = Seen.from_json(one.to_json())  # records travel as JSON between processes
    merged.merge(Seen.from_json(two.to_json()))
    assert merged.sent_between(opens, opens + 1) == 30
    assert merged.busiest_second() == 30
    lines = generator_lines(merged, opens, "12")
    assert lines[0].startswith("opening second: 30 purchases sent in it")
    assert "2 locust processes, the busiest at 95% of a core over its run" in lines[1]
    assert lines[2].startswith("WARNING: the load generator was the bottleneck")
    merged.processes = [(2.0, 10.0)]
    assert not any(line.startswith("WARNING") for line in generator_lines(merged, None, "-"))
    # idle over its whole run, saturated in the opening second: that second is the warning
    one.opening_cpu, two.opening_cpu = [(0.97, 1.0)], [(0.4, 1.0)]
    merged = Seen.from_json(one.to_json())
    merged.merge(Seen.from_json(two.to_json()))
    merged.processes = [(0.5, 10.0), (0.4, 10.0)]
    lines = generator_lines(merged, opens, "12")
    assert "the busiest at 5% of a core over its run, 97% in the opening second" in lines[1]
    assert lines[2].startswith(
        "WARNING: the load generator was the bottleneck (a locust process at 97%"
    )


def test_each_process_records_its_own_cpu_and_wall_time(tmp_path: Path) -> None:
    seen = Seen()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    deadline = wall0 + 0.05
    while time.monotonic() < deadline:  # busy for 50 ms: some CPU to measure
        pass
    seen.measure_opening(cpu0, wall0)
    seen.write(tmp_path)
    loaded = Seen.load_dir(tmp_path)
    [(cpu, wall)] = loaded.processes
    assert 0 < cpu and 0 < wall
    [(opening_cpu, opening_wall)] = loaded.opening_cpu
    assert 0 < opening_cpu and 0.05 <= opening_wall
    assert loaded.busiest_opening_cpu() == opening_cpu / opening_wall
    assert Seen().busiest_opening_cpu() is None
