"""``bench/opening.py`` (the ``opening`` part of ``flashsale bench``), with tiny counts: the
drop's opening second and the server's wrk rate are both in the report, with their ratio.
Its figures are the bench's; here, that each is there and sane."""

from __future__ import annotations

import re
import shutil

import pytest

from flashsale.bench import opening

pytestmark = pytest.mark.slow

DROP_OUTPUT = """setup: 8 of 8 ready
opening second: 1,234 purchases sent in it · busiest second 1,500 · the client's purchase p99 80 ms
load generator: 2 locust processes, the busiest at 95% of a core
WARNING: the load generator was the bottleneck (a locust process at 95% of a core): ...
verdict: PASS
"""


def test_drop_output_parsed() -> None:
    first, busiest, verdict, generator = opening.parse_drop(DROP_OUTPUT)
    assert (first, busiest, verdict) == (1234, 1500, "verdict: PASS")
    assert generator.startswith("load generator: 2 locust processes") and "WARNING" in generator
    failed = DROP_OUTPUT.replace(
        "verdict: PASS", "VIOLATION: 2.0 % of requests failed\nverdict: FAIL"
    )
    assert opening.parse_drop(failed)[2] == "verdict: FAIL (2.0 % of requests failed)"
    with pytest.raises(RuntimeError, match="no opening second"):
        opening.parse_drop("verdict: FAIL\n")


def test_opening_part_reports_the_opening_second_against_wrk(
    redis_url: str, pg_admin_url: str
) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (apt-get install -y wrk)")
    argv = ["--users", "60", "--processes", "1", "--run-time", "15", "--wrk-seconds", "1"]
    report = opening.run(argv, redis_url, pg_admin_url)
    sent = re.search(r"sent in the opening second \| ([\d,]+) \|", report)
    assert sent and 0 < int(sent.group(1).replace(",", "")), report
    rate = re.search(r"the server's purchase rate .* \| ([\d,]+) /s \|", report)
    assert rate and int(rate.group(1).replace(",", "")) > 0, report
    ratio = re.search(r"opening second ÷ the server's rate \| \*\*([\d.]+)×\*\*", report)
    assert ratio and float(ratio.group(1)) > 0, report
    assert "load generator: 1 locust process" in report and "verdict: PASS" in report, report
    assert "python -m flashsale.bench.opening --users 60" in report
