"""``bench/script.py`` runs both scripts, bounded, and yields a ratio (no speed asserted)."""

from __future__ import annotations

from flashsale.bench.script import PIPELINES, measure, report


async def test_script_bench_runs_both_scripts_and_reports_a_ratio(redis_url: str) -> None:
    figures = await measure(redis_url, runs=1, requests=2_000)
    for pipeline in PIPELINES:
        assert figures[f"script-p{pipeline}"].median > 0
        assert figures[f"reference-p{pipeline}"].median > 0
        ratio = figures[f"ratio-p{pipeline}"].median
        assert (
            ratio
            == figures[f"script-p{pipeline}"].median / figures[f"reference-p{pipeline}"].median
        )
    assert figures["script-us"].median > 0 and figures["reference-us"].median > 0
    text = report(figures, 2_000)
    assert "| -P 16 |" in text and "×" in text


async def test_refusal_bench_runs_bounded(redis_url: str) -> None:
    from flashsale.bench.script import refusal_cost

    veteran, newcomer = await refusal_cost(redis_url, history=30, requests=500)
    assert veteran > 0 and newcomer > 0  # a figure, not a speed claim
