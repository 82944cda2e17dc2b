"""`flashsale demo` tells a short story and keeps the servers' logs in the file it names; its
burst is the load test's generator (locust processes released together at the opening)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import delete_namespace, server_env

pytestmark = pytest.mark.slow


def test_the_demo_is_a_short_story_with_its_logs_in_a_file(
    redis_url: str, database_url: str, namespace: str, tmp_path: Path
) -> None:
    env = server_env(redis_url, database_url, namespace) | {"FLASHSALE_DURABILITY": "fast"}
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "flashsale.cli.main",
                "demo",
                "--buyers",
                "150",
                "--attempts",
                "300",
                "--serials",
                "60",
                "--payment-timeout",
                "25",  # payments start after the burst, at least 2 s before the deadline
                "--processes",
                "2",  # the burst over two locust processes, whatever the machine's cores
                "--logs-dir",
                str(tmp_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        delete_namespace(redis_url, namespace)
    lines = done.stdout.splitlines()
    story = done.stdout + done.stderr[-2000:]
    assert done.returncode == 0 and lines[-1].startswith("verdict: PASS"), story
    assert not [line for line in lines if "VIOLATION" in line], story
    assert len(lines) < 40, f"a story, not a log:\n{story}"
    steps = [line for line in lines if re.match(r"^\[\d/8\] ", line)]
    assert len(steps) == 8, story  # the embedded-servers step is skipped: services are given
    assert any("the server: each purchase took p50" in line for line in lines), story
    # the burst came from the load test's generator: its users' records, its opening second
    [clients] = [line.strip() for line in lines if "the clients: 150 locust users" in line]
    sent = int(clients.split(" sent ")[1].split()[0].replace(",", ""))
    assert clients.startswith("the clients: 150 locust users over 2 processes") and sent >= 300
    [opening] = [line.strip() for line in lines if "opening second: " in line]
    assert int(opening.split()[2].replace(",", "")) > 0, story
    # the master and its two workers, each of which measured the opening second
    [load] = [line.strip() for line in lines if line.strip().startswith("load generator: ")]
    assert load.startswith("load generator: 3 locust processes,") and "opening second" in load
    assert len(list(tmp_path.glob("demo-*/burst/seen-*.json"))) == 3, story
    # locust ended once every buyer was done, not after its whole --run-time (120 s)
    burst_step = next(i for i, line in enumerate(lines) if "released together at the" in line)
    assert float(lines[burst_step + 1].strip("( s)")) < 90, story
    assert any("after-sales: ticket" in line and "refunded" in line for line in lines), story
    cart = [line for line in lines if "cart tokens read back from the chain, owned by 0x" in line]
    assert len(cart) == 1 and cart[0].count(" token ") == 2, story
    assert not any(re.match(r"^\d{4}-\d\d-\d\dT", line) for line in lines), "no log lines"
    [named] = re.findall(r"The servers' logs go to (\S+)", done.stdout)
    log = Path(named)
    assert log.exists() and "flashsale.access" in log.read_text(), log
