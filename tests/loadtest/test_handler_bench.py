"""``bench/http.py`` (the ``handler`` part of ``flashsale bench``), bounded: one second per
phase on one server. Its figures are the bench's; here, that each is there and sane."""

from __future__ import annotations

import math
import re
import shutil

import pytest

from flashsale.bench import http


def test_cpu_per_request_parsed_from_proc_and_wrk() -> None:
    out = "  12345 requests in 1.00s, 1.2MB read\nRequests/sec:  12345.00\n"
    assert http.wrk_requests(out) == 12345
    assert http.wrk_requests("nothing") == 0
    assert http.group_cpu_s(2**22 + 12345) == 0.0  # no such process group


def test_handler_part_reports_each_figure(redis_url: str) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (apt-get install -y wrk)")
    report = http.run(
        ["--duration", "1", "--warmup", "1", "--paced-connections", "100", "--redis-url", redis_url]
    )
    rows = [line for line in report.splitlines() if line.startswith("| granian |")]
    assert [row.split(" | ")[2] for row in rows] == [
        "bare POST (echo)",
        "purchase",
        "bare POST (echo), paced",
        "purchase, paced",
    ], report
    for row in rows:
        cells = row.split(" | ")
        assert int(cells[4].replace(",", "")) > 0, row  # req/s
        assert cells[7] == "0", row  # errors: every purchase made an order
        cpu = float(cells[8])
        assert math.isfinite(cpu) and cpu > 0, row
    summary = re.search(r"granian: purchase ÷ bare POST \*\*([\d.]+)×\*\*", report)
    assert summary and float(summary.group(1)) > 0, report
    assert "CPU per request" in report and "paced connections" in report
    assert "--redis-url" not in report  # the command shown reproduces on a private Redis
