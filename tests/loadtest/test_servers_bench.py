"""``bench/servers.py`` (granian's knobs against uvicorn), bounded: one round of two arms
(uvicorn, and uvicorn under ``serve --with-workers`` on a scratch database), one second
per phase. Its figures are the bench's; here, that each arm ran and every figure, the
whole stack's CPU per request among them, is there and sane."""

from __future__ import annotations

import math
import shutil

import pytest

from flashsale.bench import servers

pytestmark = pytest.mark.slow


def test_each_arm_reports_every_figure(redis_url: str, pg_admin_url: str) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (apt-get install -y wrk)")
    argv = ["--rounds", "1", "--duration", "1", "--paced-connections", "100"]
    argv += ["--paced-rate", "200", "--arms", "uvicorn", "stack", "--redis-url", redis_url]
    argv += ["--database-url", pg_admin_url]  # the stack arm's scratch database
    args = servers.parser().parse_args(argv)
    figures = servers.measure(args, redis_url)
    stack = next(a for a in servers.ARMS if a.key == "stack")
    assert list(figures) == ["uvicorn (httptools, uvloop)", stack.name]
    for arm, figs in figures.items():
        for endpoint, phase, what in servers.FIGURES:
            value = figs[f"{endpoint}/{phase}/{what}"].median
            assert math.isfinite(value) and value > 0, (arm, endpoint, phase, what, value)
        assert figs["purchase/closed/errors"].median == 0, arm  # every purchase an order
    report = servers.report(figures, args, "python -m flashsale.bench.servers")
    rows = [line for line in report.splitlines() if line.startswith("| uvicorn --with-workers")]
    assert len(rows) == 1 and rows[0].count("|") == 10, report
