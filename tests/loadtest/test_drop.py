"""A short locust ``drop`` against a real server process: exit 0, verdict PASS, clean audit.

The server is ``flashsale serve --with-workers`` (write-behind and timers) on the
suite's Redis and a PostgreSQL database of its own; the load test runs as the CLI
does, in a process of its own (locust monkey-patches sockets), and locust in a
child of that.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from .servers import loadtest

pytestmark = pytest.mark.slow


def test_drop_passes_with_a_clean_audit(served: tuple[dict[str, str], str], tmp_path: Path) -> None:
    env, url = served
    done = loadtest(
        env,
        "drop",
        url,
        users=400,
        spawn_rate=200,
        serials=40,
        run_time=30,
        payment_timeout=6,  # a payment starts at least 2 s before the deadline: 4 s to start
        drain_timeout=20,
        reports_dir=tmp_path / "reports",
    )
    closed = [
        line.split()[2] for line in done.stdout.splitlines() if line.startswith("cleanup: sale ")
    ]
    status = httpx.get(f"{url}/v1/sales/{closed[0]}").json()["status"] if closed else None
    # --json: the report as one JSON object on stdout, the progress on stderr
    bots = loadtest(env, "bots", url, "--json", users=3, run_time=4, reports_dir=tmp_path / "bots")
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    report = "\n".join(lines) + "\n" + done.stderr[-2000:]
    assert lines[-1] == "verdict: PASS", report
    assert done.returncode == 0, report
    assert not [line for line in lines if line.startswith("VIOLATION:")], report
    (run,) = (tmp_path / "reports").iterdir()
    verdict = json.loads((run / "verdict.json").read_text())
    assert verdict["audit"]["ok"] is True and verdict["audit"]["violations"] == []
    assert verdict["audit"]["lag"] == 0
    assert verdict["audit"]["persisted"] >= 40  # every serial sold at least once
    assert (run / "locust.html").exists() and (run / "locust_stats.csv").exists()
    seen = [json.loads(p.read_text()) for p in run.glob("seen-*.json")]
    assert sum(s["buyers"] for s in seen) == 400
    assert sum(s["replays"].get("same", 0) for s in seen) > 0
    # the wallet buyers were ready before the run and paid from their wallets in it
    assert any(line.startswith("setup: 8 of 8 ready") for line in lines), report
    assert sum(s["payments"].get("balance succeeded", 0) for s in seen) > 0, report
    assert not any("payment password" in s["requests"] for s in seen), "not in the timed run"
    # it cleaned up after itself, and never says "locust exit" above its verdict
    assert any(line.startswith("cleanup: sale lt-") and line.endswith("closed") for line in lines)
    assert status == "closed", report
    assert "locust exit" not in done.stdout
    # the opening second as the client sent it, and the client's own load
    [opening] = [line for line in lines if line.startswith("opening second: ")]
    assert int(opening.split()[2].replace(",", "")) > 0, opening
    assert any(line.startswith("load generator: 1 locust process,") for line in lines), report
    report = json.loads(bots.stdout)
    assert report["verdict"] in ("PASS", "FAIL") and report["summary"], bots.stdout
    assert report["sale"]["total"] == 1000 and "setup" not in bots.stdout
    assert "running locust" in bots.stderr


def test_a_bucketed_drop_passes_with_a_clean_audit(
    served: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """``--buckets 2``: the drop is created over two slots, and the invariant checks (the
    audit's and the clients') hold for it: no serial twice, no buyer over the limit."""
    env, url = served
    done = loadtest(
        env,
        "drop",
        url,
        users=120,
        spawn_rate=120,
        serials=20,
        buckets=2,
        run_time=20,
        payment_timeout=6,
        drain_timeout=20,
        reports_dir=tmp_path / "reports",
    )
    lines = done.stdout.strip().splitlines()
    report = "\n".join(lines) + "\n" + done.stderr[-2000:]
    assert lines and lines[-1] == "verdict: PASS", report
    assert done.returncode == 0, report
    assert any(" 2 buckets" in line for line in lines), report
    (run,) = (tmp_path / "reports").iterdir()
    verdict = json.loads((run / "verdict.json").read_text())
    assert verdict["sale"]["buckets"] == 2 and verdict["sale"]["total"] == 20
    assert verdict["audit"]["ok"] is True and verdict["audit"]["lag"] == 0
    assert verdict["audit"]["persisted"] >= 20  # every serial sold at least once


def test_bots_on_a_bucketed_drop_hold_the_per_ip_limit_over_the_buckets(
    served: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """``bots --buckets 3``: the bots' addresses are refused at the per-IP limit over the
    whole drop (their buyers' homes are in every bucket): neither the clients' checks nor
    the audit find an address over it."""
    env, url = served
    reports = tmp_path / "reports"
    done = loadtest(env, "bots", url, users=6, run_time=6, buckets=3, reports_dir=reports)
    lines = done.stdout.strip().splitlines()
    report = "\n".join(lines) + "\n" + done.stderr[-2000:]
    assert any(" 3 buckets" in line for line in lines), report
    assert not [line for line in lines if line.startswith("VIOLATION: address")], report
    (run,) = reports.iterdir()
    verdict = json.loads((run / "verdict.json").read_text())
    assert verdict["sale"]["buckets"] == 3, verdict
    assert verdict["audit"]["ok"] is True, verdict["audit"]
    seen = [json.loads(p.read_text()) for p in run.glob("seen-*.json")]
    assert sum(s["refused"].get("limit_reached", 0) for s in seen) > 0, report
