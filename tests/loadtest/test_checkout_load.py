"""A short locust ``checkout`` against a real server process: carts across three drops of
two merchants, coins, parent and merchant bills paid through the simulator; verdict PASS.

The server is ``flashsale serve --with-workers`` (write-behind, timers, the simulator)
on the suite's Redis and a PostgreSQL database of its own; the load test runs as the
CLI does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .servers import loadtest

pytestmark = pytest.mark.slow


def test_checkout_passes_with_clean_audits(
    served: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, url = served
    done = loadtest(
        env,
        "checkout",
        url,
        users=40,
        spawn_rate=40,
        serials=15,
        run_time=20,
        payment_timeout=5,
        drain_timeout=30,
        reports_dir=tmp_path / "reports",
        timeout=150,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "verdict: PASS", out[-4000:]
    assert "VIOLATION" not in done.stdout
    bought = next(line for line in lines if line.startswith("carts: "))
    assert " 0 bought whole" not in bought  # some carts were bought, and some refused
    assert "sold_out" in bought, bought
