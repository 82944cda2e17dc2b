"""The chart of ``flashsale bench`` (``docs/bench.png``, shown by the README), with matplotlib.

Four panels: purchases/s at each layer, HTTP latency by open connections, cost
as the sale grows, and req/s by API workers beside the drain against COPY.
"""

from __future__ import annotations

from pathlib import Path

from flashsale.bench.common import Figure, machine_line
from flashsale.bench.results import CONCURRENCY, Results


def title(runs: int) -> str:
    return f"flashsale bench · {machine_line()} · medians of {runs} (bars: min–max)"


def chart(results: Results, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (ax_layers, ax_latency), (ax_growth, ax_workers) = axes

    def bars(ax: object, labels: list[str], figures: list[Figure], color: str) -> None:
        from matplotlib.axes import Axes

        assert isinstance(ax, Axes)
        medians = [f.median for f in figures]
        errs = [
            [f.median - min(f.runs) for f in figures],
            [max(f.runs) - f.median for f in figures],
        ]
        ax.bar(labels, medians, yerr=errs, capsize=4, color=color)
        for i, f in enumerate(figures):
            ax.annotate(
                f"{f.median:,.0f}",
                (i, max(f.runs)),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )

    order = [
        ("redis-benchmark", "Redis ceiling\n(-P 16)"),
        ("redis-benchmark-p1", "Redis\n-P 1"),
        ("engine", "engine\n(Python)"),
        ("http", "HTTP\nendpoint"),
        ("postgres-peer", "PostgreSQL\nSKIP LOCKED"),
    ]
    present = [(k, label) for k, label in order if k in results.layers]
    if present:
        bars(
            ax_layers,
            [label for _, label in present],
            [results.layers[k] for k, _ in present],
            "#4C72B0",
        )
        top = results.layers.get("redis-benchmark")
        if top is not None and top.median:
            for i, (key, _) in enumerate(present):
                ratio = results.layers[key].median / top.median
                ax_layers.annotate(
                    f"{ratio:.2f}×",
                    (i, 0),
                    xytext=(0, 4),
                    textcoords="offset points",
                    ha="center",
                    color="white",
                    fontsize=9,
                    fontweight="bold",
                )
    ax_layers.set_title(f"Purchases/s at each layer ({CONCURRENCY} clients; × of the ceiling)")
    ax_layers.set_ylabel("purchases/s")

    if results.latency:
        xs = [r.connections for r in results.latency]
        for attr, style in (("p50", "o-"), ("p99", "s--")):
            figs = [getattr(r, attr) for r in results.latency]
            ax_latency.errorbar(
                xs,
                [f.median for f in figs],
                yerr=[
                    [f.median - min(f.runs) for f in figs],
                    [max(f.runs) - f.median for f in figs],
                ],
                fmt=style,
                capsize=4,
                label=attr,
            )
        ax_latency.set_xscale("log")
        ax_latency.set_yscale("log")
        ax_latency.set_xticks(xs, [f"{x:,}" for x in xs])
        ax_latency.legend()
        for r in results.latency:
            if r.served < r.connections:
                ax_latency.annotate(
                    f"{r.connections - r.served:,} of {r.connections:,}\nnever answered",
                    (r.connections, r.p50.median),
                    xytext=(-25, -70),
                    textcoords="offset points",
                    ha="right",
                    fontsize=8,
                    color="#C44E52",
                    arrowprops={"arrowstyle": "->", "color": "#C44E52"},
                )
    ax_latency.set_title("HTTP purchase latency (closed loop)")
    ax_latency.set_xlabel("open connections")
    ax_latency.set_ylabel("ms (log)")

    ranges = [g for g in results.growth if g.kind == "range"]
    lists = [g for g in results.growth if g.kind == "list"]
    if ranges:
        for rows, label, style in ((ranges, "range pool", "o-"), (lists, "list pool", "s--")):
            if rows:
                ax_growth.plot(
                    [g.size for g in rows],
                    [g.bytes_created.median / 1024 for g in rows],
                    style,
                    label=f"{label}: KiB at creation",
                )
        ax_growth.set_xscale("log")
        ax_growth.set_yscale("log")
        ax_growth.set_ylim(1, 1e6)  # 1 KiB .. 1 GiB: a flat line must look flat
        twin = ax_growth.twinx()
        twin.plot(
            [g.size for g in ranges],
            [g.rate.median for g in ranges],
            "^:",
            color="#C44E52",
            label="range pool: purchases/s",
        )
        twin.set_ylabel("purchases/s")
        twin.set_ylim(bottom=0)
        handles = ax_growth.get_legend_handles_labels()
        twins = twin.get_legend_handles_labels()
        ax_growth.legend(handles[0] + twins[0], handles[1] + twins[1], fontsize=8)
    ax_growth.set_title("Cost as the sale grows")
    ax_growth.set_xlabel("serials in the sale")
    ax_growth.set_ylabel("Redis KiB of the sale's keys (log)")

    labels: list[str] = []
    figures: list[Figure] = []
    for w, f in results.workers.items():
        labels.append(f"API\n{w} worker{'s' if w > 1 else ''}")
        figures.append(f)
    for d in results.drain:
        labels.append(f"drain\n{d.consumers} consumer{'s' if d.consumers > 1 else ''}")
        figures.append(d.drain)
    if results.drain:
        labels.append("COPY")
        figures.append(results.drain[0].copy)
    if figures:
        bars(ax_workers, labels, figures, "#55A868")
    ax_workers.set_title("Purchase req/s by API workers · drain vs COPY orders/s")
    ax_workers.tick_params(axis="x", labelsize=8)
    ax_workers.set_ylabel("per second")

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
