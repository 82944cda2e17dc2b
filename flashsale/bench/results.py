"""What ``flashsale bench`` measured: each part's figures, and their JSON form.

run_all.py fills a ``Results``; report.py writes it as Markdown and chart.py
draws it. The JSON copy next to the Markdown lets ``--replot`` redraw the chart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from flashsale.bench.common import Figure

CONCURRENCY = 50  # redis-benchmark's -c in bench/engine.py: every layer runs at this


@dataclass
class Latency:
    connections: int
    rps: Figure
    p50: Figure
    p99: Figure
    errors: int
    served: int  # of `connections` held open at once, how many got an answer within 5 s


@dataclass
class Growth:
    kind: str  # "range" or "list"
    size: int
    create_ms: Figure
    bytes_created: Figure
    purchases: int
    bytes_after: Figure
    rate: Figure


@dataclass
class Drain:
    consumers: int
    orders: int
    drain: Figure  # orders/s
    copy: Figure  # orders/s
    ratio: Figure  # drain / COPY


@dataclass
class CheckoutCost:
    size: int  # drops per cart
    carts: int
    checkout: Figure  # serials/s bought through carts of `size`
    single: Figure  # serials/s bought as single purchases, same serials
    ratio: Figure  # checkout / single


@dataclass
class Results:
    layers: dict[str, Figure] = field(default_factory=dict)
    echo: Figure | None = None
    latency: list[Latency] = field(default_factory=list)
    growth: list[Growth] = field(default_factory=list)
    drain: list[Drain] = field(default_factory=list)
    workers: dict[int, Figure] = field(default_factory=dict)
    script: dict[str, Figure] = field(default_factory=dict)  # bench/script.py's figures
    handler: str = ""  # bench/http.py's Markdown: purchase handler vs bare POST
    cluster: str = ""  # bench/cluster.py's Markdown: many drops, one hot drop, projection
    checkout: list[CheckoutCost] = field(default_factory=list)  # bench/checkout.py's
    opening: str = ""  # bench/opening.py's Markdown: a drop's opening second vs wrk
    notes: list[str] = field(default_factory=list)


def results_to_json(results: Results) -> dict[str, object]:
    return dataclasses.asdict(results)


def results_from_json(data: dict[str, Any]) -> Results:
    def fig(d: dict[str, Any]) -> Figure:
        return Figure(tuple(d["runs"]))

    return Results(
        layers={k: fig(v) for k, v in data["layers"].items()},
        echo=fig(data["echo"]) if data.get("echo") else None,
        latency=[
            Latency(
                r["connections"],
                fig(r["rps"]),
                fig(r["p50"]),
                fig(r["p99"]),
                r["errors"],
                r["served"],
            )
            for r in data["latency"]
        ],
        growth=[
            Growth(
                g["kind"],
                g["size"],
                fig(g["create_ms"]),
                fig(g["bytes_created"]),
                g["purchases"],
                fig(g["bytes_after"]),
                fig(g["rate"]),
            )
            for g in data["growth"]
        ],
        drain=[
            Drain(d["consumers"], d["orders"], fig(d["drain"]), fig(d["copy"]), fig(d["ratio"]))
            for d in data.get("drain") or []
        ],
        workers={int(k): fig(v) for k, v in data["workers"].items()},
        script={k: fig(v) for k, v in (data.get("script") or {}).items()},
        handler=str(data.get("handler") or ""),
        cluster=str(data.get("cluster") or ""),
        checkout=[
            CheckoutCost(
                c["size"], c["carts"], fig(c["checkout"]), fig(c["single"]), fig(c["ratio"])
            )
            for c in data.get("checkout") or []
        ],
        opening=str(data.get("opening") or ""),
        notes=list(data.get("notes", [])),
    )
