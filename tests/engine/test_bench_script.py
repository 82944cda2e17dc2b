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


async def test_cost_rounds_alternate_both_scripts_and_report_a_row(redis_url: str) -> None:
    from flashsale.bench.script import cost

    figures = await cost(redis_url, rounds=2, calls=500)
    for name in ("script", "reference"):
        assert len(figures[f"cost-{name}"].runs) == 2 and figures[f"cost-{name}"].median > 0
    ratios = zip(figures["cost-reference"].runs, figures["cost-script"].runs, strict=True)
    assert figures["cost-ratio"].runs == tuple(base / ours for base, ours in ratios)
    both = await measure(redis_url, runs=1, requests=500)
    assert "each alone (2 rounds" in report(both | figures, 500)
