"""``flashsale bench --quick``: every part runs, bounded, and writes its tables and chart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


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
        "### Many drops: 10 sales at once on a 3-master Redis Cluster",
        "a projection, not a measurement",
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
            "The purchase handler against a bare POST",
            "- granian: purchase ÷ bare POST",
            "- uvicorn: purchase ÷ bare POST",
            "- granian: purchase ÷ the featureless peer",
            "### A drop's opening second against the server's rate",
            "opening second ÷ the server's rate",
        ):
            assert row in text, text
    else:
        assert "wrk is not installed" in text
