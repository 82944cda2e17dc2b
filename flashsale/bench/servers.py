"""Granian's knobs against uvicorn (httptools, uvloop): an A/B at 1,000 paced connections.

Run: ``python -m flashsale.bench.servers`` (issue #14: which server, with which knobs,
for purchase-heavy drops). Each *arm* is ``flashsale serve`` with one server and one set
of FLASHSALE_SERVER / FLASHSALE_GRANIAN_* variables (settings.ServerSettings), the same
workers, the same sale, the same wrk load as ``bench/http.py``:

1. closed loop, ``--connections`` connections: bare POST, then purchase → req/s and
   the workers' CPU µs per request;
2. paced, ``--paced-connections`` connections offering ``--paced-rate`` req/s in all
   (the same rate for every arm, so the arms are comparable) → p99 and CPU µs.

The ``stack`` arms are uvicorn (the default) and granian under ``serve --with-workers``
(write-behind, timers and the payment simulator beside the API, on a scratch PostgreSQL
database): persist competing for the cores, its CPU per request that of every process of the stack.

The arms run in turn, ``--rounds`` times, the order rotated each round, so a machine
shared with other work loads every arm alike; every figure is the median of the rounds
with its spread (min–max). Loopback only; every wrk run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flashsale.bench.common import Figure, bench_database_url, machine_line, scratch
from flashsale.bench.http import (
    ECHO,
    SALE_ID,
    Load,
    _cleanup,
    _prepare,
    group_cpu_s,
    load_parser,
    parse_wrk,
    server_env,
    server_process,
    tree_cpu_s,
)
from flashsale.bench.opening import stack_env
from flashsale.devservers import EmbeddedRedis, free_port

PURCHASE = f"/v1/sales/{SALE_ID}/purchase"


@dataclass(frozen=True)
class Arm:
    key: str  # --arms picks arms by it
    name: str
    server: str
    env: tuple[tuple[str, str], ...] = ()
    # serve --with-workers: persist and timers compete for the cores (a scratch database);
    # its CPU per request is then the whole stack's (every process below the supervisor)
    with_workers: bool = False


ARMS = (
    Arm("uvicorn", "uvicorn (httptools, uvloop)", "uvicorn"),
    Arm("granian", "granian mt, 1 thread (auto)", "granian"),
    Arm("st", "granian st", "granian", (("FLASHSALE_GRANIAN_RUNTIME_MODE", "st"),)),
    Arm(
        "threads2",
        "granian mt, 2 threads",
        "granian",
        (("FLASHSALE_GRANIAN_RUNTIME_THREADS", "2"),),
    ),
    Arm(
        "bp512", "granian backpressure 512", "granian", (("FLASHSALE_GRANIAN_BACKPRESSURE", "512"),)
    ),
    Arm("stack", "uvicorn --with-workers (whole stack's CPU)", "uvicorn", with_workers=True),
    Arm(
        "stack-nice0",
        "uvicorn --with-workers, every process at the same priority",
        "uvicorn",
        (("FLASHSALE_WORKERS_NICE", "0"),),
        with_workers=True,
    ),
    Arm(
        "stack-granian",
        "granian --with-workers (whole stack's CPU)",
        "granian",
        with_workers=True,
    ),
)
# figure names, in the table's order: (endpoint, phase, what)
FIGURES = (
    ("purchase", "closed", "rps"),
    ("echo", "closed", "rps"),
    ("purchase", "closed", "cpu"),
    ("echo", "closed", "cpu"),
    ("purchase", "paced", "p99"),
    ("echo", "paced", "p99"),
    ("purchase", "paced", "cpu"),
)


def one_round(
    arm: Arm, args: argparse.Namespace, redis_url: str, load: Load, workdir: Path
) -> dict[str, float]:
    """The arm's figures of one round, keyed ``endpoint/phase/what``."""
    if not arm.with_workers:
        namespace = f"bench{secrets.token_hex(4)}"
        asyncio.run(_prepare(redis_url, namespace))
        try:
            env = server_env(redis_url, namespace, **dict(arm.env))
            return _measured(arm, args, load, workdir, env)
        finally:
            asyncio.run(_cleanup(redis_url, namespace))
    return asyncio.run(_with_workers(arm, args, redis_url, load, workdir))


async def _with_workers(
    arm: Arm, args: argparse.Namespace, redis_url: str, load: Load, workdir: Path
) -> dict[str, float]:
    async with scratch(redis_url, args.database_url) as (database_url, _, namespace):
        await _prepare(redis_url, namespace)
        env = stack_env(redis_url, database_url, namespace) | dict(arm.env)
        env["FLASHSALE_BENCH_ENDPOINTS"] = "1"
        return await asyncio.to_thread(_measured, arm, args, load, workdir, env)


def _measured(
    arm: Arm, args: argparse.Namespace, load: Load, workdir: Path, env: dict[str, str]
) -> dict[str, float]:
    port = free_port()
    log = workdir / f"{arm.key}-{secrets.token_hex(2)}.log"
    url = f"http://127.0.0.1:{port}"
    pause_ms = max(1, round(1000 * args.paced_connections / args.paced_rate))
    flags = ("--with-workers",) if arm.with_workers else ()
    cpu_s = tree_cpu_s if arm.with_workers else group_cpu_s
    seen: dict[str, float] = {}
    with server_process(arm.server, args.workers, port, env, log, *flags) as process:
        for path in (ECHO, PURCHASE):  # warm-up: pools, token cache
            load.wrk(url, path, args.connections, args.warmup)
        for phase, connections, pause in (
            ("closed", args.connections, None),
            ("paced", args.paced_connections, pause_ms),
        ):
            for endpoint, path in (("echo", ECHO), ("purchase", PURCHASE)):
                out, cpu_us = load.measured(
                    process.pid, url, path, connections, args.duration, pause, cpu_s
                )
                rps, _, p99, non_2xx, errors = parse_wrk(out)
                seen |= {
                    f"{endpoint}/{phase}/rps": rps,
                    f"{endpoint}/{phase}/p99": p99,
                    f"{endpoint}/{phase}/cpu": cpu_us,
                    f"{endpoint}/{phase}/errors": float(non_2xx + errors),
                }
    return seen


def arms_of(args: argparse.Namespace) -> list[Arm]:
    return [a for a in ARMS if not args.arms or a.key in args.arms]


def measure(args: argparse.Namespace, redis_url: str) -> dict[str, dict[str, Figure]]:
    """Every arm's figures over ``args.rounds`` interleaved rounds."""
    arms = arms_of(args)
    runs: dict[str, dict[str, list[float]]] = {a.name: {} for a in arms}
    with tempfile.TemporaryDirectory(prefix="flashsale-servers-") as tmp:
        workdir = Path(tmp)
        load = Load.write(workdir)
        for n in range(args.rounds):
            for arm in arms[n % len(arms) :] + arms[: n % len(arms)]:
                for key, value in one_round(arm, args, redis_url, load, workdir).items():
                    runs[arm.name].setdefault(key, []).append(value)
                print(f"round {n + 1}: {arm.name} done", file=sys.stderr, flush=True)
    return {arm: {k: Figure(tuple(v)) for k, v in figs.items()} for arm, figs in runs.items()}


def report(figures: dict[str, dict[str, Figure]], args: argparse.Namespace, command: str) -> str:
    lines = [
        f"Servers A/B, {args.workers} workers, {args.rounds} interleaved rounds, medians "
        f"(spread), {machine_line()}; closed loop at {args.connections} connections, paced: "
        f"{args.paced_connections:,} connections offering {args.paced_rate:,.0f} req/s",
        "",
        "| arm | purchase req/s | bare POST req/s | purchase CPU µs | bare CPU µs "
        "| purchase paced p99 ms | bare paced p99 ms | purchase paced CPU µs | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, figs in figures.items():
        cells = []
        for endpoint, phase, what in FIGURES:
            figure = figs[f"{endpoint}/{phase}/{what}"]
            cells.append(figure.show("", 0 if what == "rps" else 1))
        errors = sum(sum(f.runs) for k, f in figs.items() if k.endswith("/errors"))
        lines.append(f"| {arm} | {' | '.join(cells)} | {errors:,.0f} |")
    lines += ["", f"Reproduce: `{command}`"]
    return "\n".join(lines)


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


def parser() -> argparse.ArgumentParser:
    parser = load_parser(__doc__, duration=6, warmup=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=1500.0,
        help="offered req/s in all in the paced phases (~0.2× a bare POST here)",
    )
    parser.add_argument(
        "--arms", nargs="*", choices=[a.key for a in ARMS], help="the arms to run (all)"
    )
    parser.add_argument("--redis-url", default=None, help="default: a private embedded Redis")
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL admin URL for the --with-workers arm (FLASHSALE_DATABASE_URL, else "
        "a private embedded one)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parser().parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_redis(args.redis_url))
        if args.database_url is None and any(a.with_workers for a in arms_of(args)):
            args.database_url = stack.enter_context(bench_database_url())
        figures = measure(args, url)
    shown = [a for a in argv if "://" not in a and a not in ("--redis-url", "--database-url")]
    command = "python -m flashsale.bench.servers " + shlex.join(shown)
    print(report(figures, args, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
