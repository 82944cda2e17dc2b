"""The Markdown report of ``flashsale bench`` (``bench/results/latest.md``)."""

from __future__ import annotations

import os
import platform
import shlex
from datetime import UTC, datetime

from flashsale.bench.common import Figure, machine_line
from flashsale.bench.results import CONCURRENCY, Results


def header(
    *, quick: bool, runs: int, versions: list[str], took_s: float, argv: list[str]
) -> list[str]:
    """The report's title, the machine and versions it ran on, and how to run it again."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"## Benchmarks ({'quick smoke run' if quick else 'full run'})",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine_line()} "
        f"({platform.processor() or platform.machine()}), load average {load} · "
        f"{' · '.join(versions)} · Python {platform.python_version()} · "
        f"medians of {runs} run{'s' if runs > 1 else ''} (min–max) · took {took_s:.0f} s",
        "",
        f"Reproduce: `{shlex.join(['flashsale', 'bench', *argv])}`",
    ]


def _ratio(fig: Figure | None, base: Figure | None) -> str:
    if fig is None or base is None or not base.median:
        return "–"
    return f"{fig.median / base.median:.2f}×"


def markdown(results: Results, heading: list[str]) -> str:
    lines = [*heading, ""]
    ceiling = results.layers.get("redis-benchmark")
    if results.layers:
        names = {
            "redis-benchmark": f"redis-benchmark -c {CONCURRENCY} -P 16, EVALSHA purchase "
            "(ceiling)",
            "redis-benchmark-p1": f"redis-benchmark -c {CONCURRENCY} -P 1 (one round trip each)",
            "engine": f"engine from Python (1 process, {CONCURRENCY} tasks)",
            "http": f"HTTP purchase endpoint (granian, 2 workers, wrk -c {CONCURRENCY})",
            "postgres-peer": f"PostgreSQL only, SKIP LOCKED ({CONCURRENCY} connections)",
        }
        lines += [
            f"### Purchase path at each layer ({CONCURRENCY} concurrent clients, same run)",
            "",
            "| layer | purchases/s | ratio to ceiling |",
            "|---|---:|---:|",
        ]
        for key, label in names.items():
            fig = results.layers.get(key)
            if fig is not None:
                lines.append(f"| {label} | {fig.show()} | {_ratio(fig, ceiling)} |")
        if results.echo is not None:
            http = results.layers.get("http")
            lines += [
                "",
                f"Bare POST endpoint of the same app (reads and validates the same body): "
                f"{results.echo.show(' req/s')}; purchase/bare = {_ratio(http, results.echo)} "
                "(goal ≥ 0.60×).",
            ]
        lines.append("")
    if results.latency:
        lines += [
            "### HTTP purchase latency by open connections (wrk closed loop, 2 workers)",
            "",
            "| connections | req/s | p50 ms | p99 ms | errors | answered when all open |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r.connections:,} | {r.rps.show()} | {r.p50.show('', 1)} | "
            f"{r.p99.show('', 1)} | {r.errors} | {r.served:,} of {r.connections:,} |"
            for r in results.latency
        ]
        lines += [
            "",
            "Closed loop: each connection sends its next request as soon as it is answered, so "
            "p50 grows as connections / throughput; the paced figure is `bench/http.py`'s. "
            "Last column: all connections held open at once, one request each, answered "
            "within 5 s (wrk's percentiles only cover the connections the server reads).",
            "",
        ]
        starved = [r for r in results.latency if r.served < r.connections]
        if starved:
            r = starved[0]
            lines += [
                f"**{r.connections - r.served:,} of {r.connections:,} open connections were "
                "never answered**: the server holds at most a fixed number of connections "
                "(granian's backpressure defaults to backlog / workers per worker).",
                "",
            ]
    if results.growth:
        lines += [
            "### Cost as the sale grows",
            "",
            "| pool | serials | create ms | Redis bytes at creation | purchases | "
            "bytes after | bytes/order | purchases/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for g in results.growth:
            per_order = (g.bytes_after.median - g.bytes_created.median) / g.purchases
            lines.append(
                f"| {g.kind} | {g.size:,} | {g.create_ms.show('', 1)} | "
                f"{g.bytes_created.show()} | {g.purchases:,} | {g.bytes_after.show()} | "
                f"{per_order:,.0f} | {g.rate.show()} |"
            )
        lines += [
            "",
            "Range pools: a cursor and a keyed permutation, no per-serial memory, so creation "
            "time and bytes stay flat from 10^3 to 10^7; list pools hold every serial.",
            "",
        ]
    if results.script:
        from flashsale.bench.script import report as script_report

        lines += ["### Purchase script vs the reference purchase (Redis alone, same run)", ""]
        lines += script_report(results.script, 0).split("\n")[2:]
        lines.append("")
    if results.checkout:
        from flashsale.bench.checkout import report as checkout_report

        lines += [
            "### The checkout against single purchases of the same serials (same run)",
            "",
            *checkout_report(results.checkout),
            "",
            "Serials per second: carts of N drops (N purchases and one PostgreSQL write "
            "each) against the same number of serials bought one purchase at a time.",
            "",
        ]
    if results.handler:
        lines += [
            "### The purchase handler against a bare POST (granian and uvicorn, same run)",
            "",
        ]
        lines += [results.handler, ""]
    if results.opening:
        lines += ["### A drop's opening second against the server's rate (same run)", ""]
        lines += [results.opening, ""]
    if results.workers:
        base = results.workers.get(1)
        lines += [
            f"### HTTP purchase req/s by API worker processes (wrk -c {CONCURRENCY})",
            "",
            "| workers | req/s | vs 1 worker |",
            "|---:|---:|---:|",
        ]
        lines += [
            f"| {w} | {fig.show()} | {_ratio(fig, base)} |" for w, fig in results.workers.items()
        ]
        lines += [
            "",
            f"{os.cpu_count()} cores, shared by the workers, Redis and wrk in this run.",
            "",
        ]
    if results.drain:
        lines += [
            "### Write-behind drain against a plain COPY of the same rows",
            "",
            "| orders | consumers | drain (orders/s) | COPY (orders/s) | drain / COPY |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {d.orders:,} | {d.consumers} | {d.drain.show()} | {d.copy.show()} | "
            f"{d.ratio.show('×', 2)} |"
            for d in results.drain
        ]
        lines.append("")
    if results.cluster:
        lines += ["## Past one Redis: a 3-master Redis Cluster (one run)", ""]
        lines += [results.cluster.rstrip(), ""]
    lines += [f"- {note}" for note in results.notes]
    return "\n".join(lines).rstrip() + "\n"
