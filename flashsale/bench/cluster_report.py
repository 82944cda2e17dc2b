"""The Markdown of ``bench/cluster.py``: many drops, one hot drop per master, and the
projection for N cores (written down as a projection: nothing here measured N cores)."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from flashsale.bench.cluster_results import ClusterResult, HotDrop, ManyDrops, MasterLoad

PROJECTED_CORES = (1, 2, 4, 8, 16)


def _port(load: MasterLoad) -> str:
    return f":{urlparse(load.url).port}"


def _us(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:,.1f}" if count else "–"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "–"


def _refused(refused: dict[str, int]) -> str:
    return ", ".join(f"{code} {n:,}" for code, n in sorted(refused.items())) or "none"


def many_section(many: ManyDrops) -> list[str]:
    p50, p99, worst = many.lag_ms
    lines = [
        f"### Many drops: {many.sales} sales at once on a {len(many.masters)}-master Redis "
        "Cluster, the write-behind running",
        "",
        "| purchases | purchases/s | orders in PostgreSQL | lost | write-behind lag per order "
        "p50 / p99 / max | last purchase → every order in PostgreSQL | refused |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {many.purchases:,} | {many.rate:,.0f} | {many.in_postgres:,} | {many.lost} | "
        f"{p50:,.0f} / {p99:,.0f} / {worst:,.0f} ms | {many.drained_after_s:.2f} s | "
        f"{_refused(many.refused)} |",
        "",
        "| master | sales on it | purchases | share | script calls/s | "
        "Redis CPU µs per call (the write-behind's reads included) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in many.masters:
        lines.append(
            f"| {_port(m)} | {m.sales} | {m.purchases:,} | {_share(m.purchases, many.purchases)} "
            f"| {m.script_calls / many.seconds:,.0f} | {_us(m.cpu_s, m.script_calls)} |"
        )
    return [*lines, ""]


def hot_section(hot: list[HotDrop]) -> list[str]:
    lines = [
        "### One hot drop, per master (no write-behind: the purchase scripts alone)",
        "",
        "| buckets | purchases/s | master | script calls/s | share of calls | "
        "Redis CPU µs per call | CPU busy |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for h in hot:
        calls = sum(m.script_calls for m in h.masters)
        for i, m in enumerate(h.masters):
            head = f"| {h.buckets} | {h.rate:,.0f} |" if i == 0 else "| | |"
            lines.append(
                f"{head} {_port(m)} | {m.script_calls / h.seconds:,.0f} | "
                f"{_share(m.script_calls, calls)} | {_us(m.cpu_s, m.script_calls)} | "
                f"{m.cpu_s / h.seconds:.0%} |"
            )
    return [*lines, ""]


def per_core_rate(hot: HotDrop) -> float:
    """Purchases per second of Redis CPU, every master's CPU counted (idle ones too)."""
    cpu = sum(m.cpu_s for m in hot.masters)
    return hot.purchases / cpu if cpu else 0.0


def projection_section(result: ClusterResult) -> list[str]:
    many = result.many
    spread = many.rate / len(many.masters)  # per master, with the load spread over all
    columns = [f"{h.buckets} bucket{'s' if h.buckets > 1 else ''}: CPU" for h in result.hot]
    lines = [
        "### Projection for N cores (a projection, not a measurement)",
        "",
        "Redis runs scripts on one thread, so a master uses one core at most. Assumed: one "
        "master per core, the load spread evenly over the N masters (N buckets of the hot "
        "drop, or many drops), the buyers and the API on other machines, the network not the "
        "limit, and a purchase costing the same CPU at N masters as here. Two bases:",
        "",
        "- **CPU**: N × purchases per second of Redis CPU (purchases ÷ every master's "
        "`used_cpu_user + used_cpu_sys` over the hot-drop run): what N masters would do each "
        "on a core of its own.",
        f"- **measured spread**: N × the per-master rate measured with the load spread (the "
        f"many-drops run: {many.rate:,.0f}/s over {len(many.masters)} masters = "
        f"{spread:,.0f}/s each). A floor: here one Python process on {os.cpu_count()} cores "
        "drove the load, and the masters were not saturated.",
        "",
        f"| cores | {' | '.join(columns)} | measured spread |",
        f"|---:|{'---:|' * len(columns)}---:|",
    ]
    for n in PROJECTED_CORES:
        cells = " | ".join(f"{n * per_core_rate(h):,.0f}" for h in result.hot)
        lines.append(f"| {n} | {cells} | {n * spread:,.0f} |")
    return [*lines, ""]


def baseline_line(result: ClusterResult) -> str:
    """The many drops against the plain hot drop of the same run, same client."""
    plain = next((h for h in result.hot if h.buckets == 1), None)
    if plain is None or not plain.rate:
        return "No plain hot drop in this run: no baseline for the many drops."
    return (
        f"Many drops ÷ one hot drop, same client, same run: {result.many.rate / plain.rate:.2f}× "
        "(the write-behind ran beside the many drops only)."
    )


def report(result: ClusterResult) -> str:
    lines = [
        *many_section(result.many),
        *hot_section(result.hot),
        baseline_line(result),
        "",
        *projection_section(result),
        f"{os.cpu_count()} cores shared by the cluster, the buyers (one Python process) and "
        f"PostgreSQL; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
    ]
    return "\n".join(lines) + "\n"
