"""The drop's opening second as the load generator sent it, against wrk on the same server.

Run: ``python -m flashsale.bench.opening`` (``flashsale bench`` runs it as its ``opening``
part). Issue #14: a drop's buyers all fire in its opening second, and the load test
must deliver that second as a second, not spread over ten.

One ``flashsale serve --with-workers`` (2 API workers, write-behind, timers, payment
simulator; no chain) on a scratch PostgreSQL database and a Redis namespace of its own.
In the same run, on that server:

1. wrk, closed loop at 64 connections, ``--wrk-seconds``: the purchase endpoint of a
   sale that never sells out → the purchases per second the server takes;
2. ``flashsale loadtest drop`` with ``--users`` buyers over ``--processes`` locust
   processes → the purchases its clients sent in the sale's opening second (the
   runner's ``opening second:`` line) and in its busiest second;
3. wrk again, as in 1 (the server's rate is the median of both).

The figure is the opening second ÷ the server's rate: how much of what the server can
take the load generator offered in the second that matters. wrk is the baseline rather
than the single-process generator because the question is whether the generator or the
server limits the opening, and wrk (C, its own process) is the load the server is known
to take; the buyers (``--users``) bound the figure too, so the report shows both.
Every phase is bounded in time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flashsale.bench.common import bench_redis_url, loopback_server, machine_line, scratch
from flashsale.bench.http import SALE_ID, SECRET, Load, _prepare, parse_wrk
from flashsale.devservers import free_port

PURCHASE = f"/v1/sales/{SALE_ID}/purchase"
CONNECTIONS = 64
# secrets of the bench's own server (prod mode: no local chain is started)
PAYSIM_SECRET = "bench-paysim-secret-" + "0" * 32


@dataclass(frozen=True)
class Opening:
    users: int
    processes: int
    opening: int  # purchases the clients sent in the sale's opening second
    busiest: int  # ... in their busiest second
    server_rates: tuple[float, ...]  # wrk's purchases/s before and after the drop
    verdict: str  # the load test's own last line
    generator: str  # its "load generator: ..." line (and a WARNING when it was the limit)

    @property
    def server_rate(self) -> float:
        return statistics.median(self.server_rates)

    @property
    def ratio(self) -> float:
        return self.opening / self.server_rate if self.server_rate else float("nan")


def parse_drop(stdout: str) -> tuple[int, int, str, str]:
    """(opening second, busiest second, verdict line, generator lines) of a drop's output."""
    match = re.search(
        r"opening second: ([\d,]+) purchases sent in it · busiest second ([\d,]+)", stdout
    )
    if not match:
        raise RuntimeError(f"the drop printed no opening second:\n{stdout[-2000:]}")
    lines = stdout.strip().splitlines()
    generator = [ln for ln in lines if ln.startswith(("load generator:", "WARNING: the load"))]
    opening, busiest = (int(g.replace(",", "")) for g in match.groups())
    verdict = lines[-1] if lines else ""
    why = [ln.removeprefix("VIOLATION: ") for ln in lines if ln.startswith("VIOLATION:")]
    if why:  # a FAIL says why in the report, not only in the drop's own output
        verdict += f" ({'; '.join(why)})"
    return opening, busiest, verdict, " · ".join(generator)


def stack_env(redis_url: str, database_url: str, namespace: str) -> dict[str, str]:
    """The environment of a bench ``serve --with-workers``: prod mode (no local chain),
    fast durability (a scratch Redis), the bench's secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return env | {
        "FLASHSALE_ENV": "prod",  # no local chain: delivery is not what is measured
        "FLASHSALE_DURABILITY": "fast",  # a scratch Redis without AOF
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_NAMESPACE": namespace,
        "FLASHSALE_JWT_SECRET": SECRET,
        "FLASHSALE_PAYSIM_SECRET": PAYSIM_SECRET,
        "FLASHSALE_LOG_FORMAT": "text",
    }


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flashsale.cli.main", *args]


async def measure(
    redis_url: str, admin_url: str, args: argparse.Namespace, workdir: Path
) -> Opening:
    async with scratch(redis_url, admin_url) as (database_url, _, namespace):
        env = stack_env(redis_url, database_url, namespace)
        await _prepare(redis_url, namespace)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = _cli("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")
        command.append("--with-workers")
        load = Load.write(workdir)
        rates: list[float] = []
        with loopback_server(command, port, env, workdir / "server.log"):
            load.wrk(url, PURCHASE, CONNECTIONS, 1)  # warm-up: pools, token cache
            rates.append(parse_wrk(load.wrk(url, PURCHASE, CONNECTIONS, args.wrk_seconds))[0])
            drop = _cli("loadtest", "drop", "--host", url, "--users", str(args.users))
            drop += ["--processes", str(args.processes), "--run-time", str(args.run_time)]
            # the drop's own payment timeout (10 s): a shorter one expires orders that a
            # loaded machine answers late, and the wallet buyers' payments then fail
            drop += ["--drain-timeout", "60"]
            drop += ["--reports-dir", str(workdir / "reports")]
            done = await asyncio.to_thread(
                subprocess.run,
                drop,
                env=env,
                capture_output=True,
                text=True,
                timeout=args.run_time + 180,
            )
            rates.append(parse_wrk(load.wrk(url, PURCHASE, CONNECTIONS, args.wrk_seconds))[0])
    opening, busiest, verdict, generator = parse_drop(done.stdout)
    return Opening(args.users, args.processes, opening, busiest, tuple(rates), verdict, generator)


def report(found: Opening, command: str) -> str:
    rates = " and ".join(f"{r:,.0f}" for r in found.server_rates)
    return "\n".join(
        [
            f"Opening second of a drop, {found.users:,} buyers over {found.processes} locust "
            f"process(es), against wrk's purchases/s on the same server, same run "
            f"({machine_line()}):",
            "",
            "| what | figure |",
            "|---|---:|",
            f"| purchases the clients sent in the opening second | {found.opening:,} |",
            f"| ... in their busiest second | {found.busiest:,} |",
            f"| the server's purchase rate (wrk -c {CONNECTIONS}, before and after: {rates}) "
            f"| {found.server_rate:,.0f} /s |",
            f"| opening second ÷ the server's rate | **{found.ratio:.2f}×** |",
            f"| opening second ÷ buyers | {found.opening / found.users:.2f}× |",
            "",
            f"{found.generator}; the drop's {found.verdict}",
            "",
            f"Reproduce: `{command}`",
        ]
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--run-time", type=int, default=30, help="the drop's bound, seconds")
    parser.add_argument("--wrk-seconds", type=int, default=5)
    return parser


def run(argv: list[str], redis_url: str, admin_url: str) -> str:
    """The Markdown report of one run (wrk installed; PostgreSQL at ``admin_url``)."""
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flashsale-opening-") as tmp:
        found = asyncio.run(measure(redis_url, admin_url, args, Path(tmp)))
    return report(found, "python -m flashsale.bench.opening " + " ".join(argv))


def main(argv: list[str] | None = None) -> int:
    from flashsale.bench.common import bench_database_url

    argv = list(argv if argv is not None else sys.argv[1:])
    parser().parse_args(argv)  # --help and bad arguments before anything starts
    with bench_redis_url() as redis_url, bench_database_url() as admin_url:
        print(run(argv, redis_url, admin_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
