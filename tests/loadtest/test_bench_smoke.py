"""``flashsale bench --quick``: its parts run, bounded, and write their tables and chart.

The handler, opening and cluster parts each return a Markdown report that the bench only
places under a heading; each runs in a test of its own (test_handler_bench.py,
test_opening_bench.py, tests/store/test_bench_cluster.py), so the quick run here leaves
them out (they were half its time) and a pure test checks their placing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flashsale.bench.report import markdown
from flashsale.bench.results import Results
from flashsale.bench.run_all import PARTS

pytestmark = pytest.mark.slow

TESTED_APART = ("handler", "opening", "cluster")
OWN_RUN = [part for part in PARTS if part not in TESTED_APART]


def test_quick_bench_writes_tables_and_chart(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    out, chart = tmp_path / "latest.md", tmp_path / "bench.png"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")},
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_ENV": "dev",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flashsale.bench.run_all",
            "--quick",
            *(f"--only={part}" for part in OWN_RUN),
            "--out",
            str(out),
            "--chart",
            str(chart),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a bound for a hung run, not a speed claim (speed is the bench's job)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 cores" in text or "cores" in text
    for row in (
        "(ceiling)",
        "engine from Python",
        "PostgreSQL only",
        "| range | 10,000,000 |",
        "Purchase script vs the reference purchase",
        "The checkout against single purchases",
        "| 3 | 40 |",
    ):
        assert row in text, text
    assert "drain / COPY" in text or "bench/drain.py is not in this build" in text, text
    if shutil.which("wrk"):
        for row in (
            "HTTP purchase endpoint",
            "| 5,000 |",
            "| 2 |",
        ):
            assert row in text, text
    else:
        assert "wrk is not installed" in text


def test_the_parts_tested_apart_are_placed_under_their_headings() -> None:
    text = markdown(
        Results(handler="HANDLER-REPORT", opening="OPENING-REPORT", cluster="CLUSTER-REPORT\n"),
        ["# heading"],
    )
    for heading, body in (
        ("### The purchase handler against a bare POST", "HANDLER-REPORT"),
        ("### A drop's opening second against the server's rate", "OPENING-REPORT"),
        ("## Past one Redis: a 3-master Redis Cluster", "CLUSTER-REPORT"),
    ):
        assert heading in text and text.index(heading) < text.index(body), text
    assert set(TESTED_APART) < set(PARTS)
