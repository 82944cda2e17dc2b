"""CLI of the load tests and benchmarks: ``flashsale loadtest ...`` and ``flashsale bench``.

Mount on the ``flashsale`` typer app with ``register(app)`` (adds the two
commands at the top level). Locust is never imported here: it runs in a child
process (it monkey-patches sockets for the whole process it lives in).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="flashsale-load",
    help="Load tests (locust) and benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


class Scenario(StrEnum):
    drop = "drop"
    bots = "bots"
    browse = "browse"
    checkout = "checkout"


@app.command("loadtest")
def loadtest(
    scenario: Annotated[Scenario, typer.Argument(help="drop | bots | browse | checkout")],
    host: Annotated[
        str, typer.Option(help="Base URL of the deployment, e.g. http://127.0.0.1:8000")
    ],
    users: Annotated[
        int | None, typer.Option(help="Locust users (drop 5000, bots 12, browse 200).")
    ] = None,
    run_time: Annotated[
        int | None, typer.Option(help="Upper bound of the locust run, seconds (drop 120).")
    ] = None,
    spawn_rate: Annotated[
        float | None, typer.Option(help="Users started per second (drop: all within ~5 s).")
    ] = None,
    serials: Annotated[
        int | None, typer.Option(help="Serials in the sale (drop: users / 10).")
    ] = None,
    per_user_limit: Annotated[int, typer.Option(help="Per-user limit of the sale.")] = 1,
    per_ip_limit: Annotated[
        int | None, typer.Option(help="Per-IP limit of the sale (bots: 2).")
    ] = None,
    buckets: Annotated[
        int, typer.Option(help="Stock buckets of the sale (1-16; >1: a bucketed drop).")
    ] = 1,
    payment_timeout: Annotated[
        int | None, typer.Option(help="Payment timeout of the sale, seconds (drop 10).")
    ] = None,
    processes: Annotated[int, typer.Option(help="Locust processes (users spread over them).")] = 1,
    drain_timeout: Annotated[
        float, typer.Option(help="Longest wait for the write-behind (and pending orders).")
    ] = 120.0,
    max_error_rate: Annotated[
        float, typer.Option(help="Share of requests that may fail (transport, 5xx).")
    ] = 0.01,
    admin_token: Annotated[
        str | None,
        typer.Option(help="Admin bearer token (default: minted from FLASHSALE_JWT_SECRET)."),
    ] = None,
    reports_dir: Annotated[
        Path | None, typer.Option(help="Where runs keep their reports (loadtest/reports).")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the run's sale open (default: close it).")
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="The report as one JSON object (progress on stderr)."),
    ] = False,
) -> None:
    """Run a locust scenario headless against HOST and judge it: one VIOLATION line per
    broken invariant, `verdict: PASS|FAIL` last, exit 1 on FAIL."""
    from flashsale.loadtest.checkout_run import run_checkout
    from flashsale.loadtest.options import REPORTS, Options
    from flashsale.loadtest.runner import run

    start = run_checkout if scenario is Scenario.checkout else run  # carts: a runner of its own
    code = start(
        Options(
            scenario=scenario.value,
            host=host.rstrip("/"),
            users=users,
            run_time_s=run_time,
            spawn_rate=spawn_rate,
            serials=serials,
            per_user_limit=per_user_limit,
            per_ip_limit=per_ip_limit,
            buckets=buckets,
            payment_timeout_s=payment_timeout,
            processes=processes,
            drain_timeout_s=drain_timeout,
            max_error_rate=max_error_rate,
            admin_token=admin_token,
            reports_dir=reports_dir or REPORTS,
            keep=keep,
            json_out=json_out,
        ).resolve(),
        echo=lambda line: typer.echo(line, err=json_out),
    )
    raise typer.Exit(code)


@app.command("bench")
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Bounded smoke run (~2 min), small figures.")
    ] = False,
    runs: Annotated[int | None, typer.Option(help="Runs per figure (default 3, quick 1).")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these parts: layers, latency, growth, drain, workers, script, handler, "
            "cluster, checkout, opening."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Markdown tables.")] = Path("bench/results/latest.md"),
    chart: Annotated[Path, typer.Option(help="PNG chart.")] = Path("docs/bench.png"),
) -> None:
    """Run every benchmark in one go; write the Markdown tables and the chart."""
    from flashsale.bench.run_all import main

    argv = ["--out", str(out), "--chart", str(chart)]
    if quick:
        argv.append("--quick")
    if runs is not None:
        argv += ["--runs", str(runs)]
    for part in only or []:
        argv += ["--only", part]
    raise typer.Exit(main(argv))


def register(parent: typer.Typer) -> None:
    """Add ``loadtest`` and ``bench`` to the ``flashsale`` app."""
    parent.command("loadtest")(loadtest)
    parent.command("bench")(bench)


if __name__ == "__main__":
    app()
