"""HTTP bench: the purchase endpoint against a bare POST of the same app, same run.

For each server asked for, one ``flashsale serve`` process (N workers, the
bench-only ``POST /v1/bench/echo`` mounted) on a free loopback port, one sale
big enough never to sell out (every purchase in the run creates an order),
1,000 buyer tokens, and ``wrk`` as the load generator in its own process:

1. closed loop, ``--connections`` connections: echo, then purchase → req/s,
   p50, p99, and purchase/echo as a ratio;
2. paced, ``--paced-connections`` open connections each waiting so that all
   together offer about ``--paced-share`` × the bare POST's closed-loop rate
   (or ``--paced-rate`` req/s; wrk's ``delay()``) → p50, p99.

Beside it, in the same run, the featureless peer (``bench/peer.py``: FastAPI under
uvicorn with httptools and uvloop, the same worker count, one Lua DECR per purchase)
gets the same closed and paced phases: our purchase ÷ the peer's req/s (goal 1.3×).

Every phase also gives the server's CPU per request: the CPU time (user +
system, from ``/proc``) of the server's worker processes over the wrk run,
divided by the requests wrk counted. The supervisor is left out; it serves
nothing. Prints Markdown table rows, a summary line per server (purchase ÷
bare req/s, CPU µs per request of both, paced p99 of both) and the command
that reproduces them. Needs
``wrk`` (``apt-get install -y wrk``); Redis is a private embedded server
unless ``--redis-url`` is given (keys then live in a namespace of their own,
deleted afterwards). Every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flashsale.api.tokens import mint_token
from flashsale.bench import peer
from flashsale.bench.common import loopback_server
from flashsale.devservers import ChildProcess, EmbeddedRedis, free_port
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec

ECHO = "/v1/bench/echo"
PEER = "peer: FastAPI, 1 DECR"  # the featureless peer's rows (bench/peer.py)
SALE_ID = "bench"
SECRET = "bench-secret-" + "0" * 32
N_BUYERS = 1000

_CLOSED_LUA = """
local reqs = {}
local idx = 0
init = function(args)
  local n = 0
  for line in io.lines(args[2]) do
    n = n + 1
    reqs[n] = wrk.format("POST", args[1], {["Authorization"] = "Bearer " .. line,
      ["Content-Type"] = "application/json"}, "{}")
  end
  idx = math.random(n)
end
request = function()
  idx = idx % #reqs + 1
  return reqs[idx]
end
"""
_PACED_LUA = (
    _CLOSED_LUA
    + """
local pause = 0
local base_init = init
init = function(args)
  base_init(args)
  pause = tonumber(args[3])
end
delay = function()
  return math.random(0, 2 * pause)
end
"""
)


@dataclass
class WrkResult:
    label: str
    server: str
    workers: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int = 0
    cpu_us: float = float("nan")  # workers' CPU time per request, microseconds


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        return float("nan")
    number, unit = float(match.group(1)), match.group(2)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk_requests(output: str) -> int:
    """How many requests wrk completed (its ``N requests in Xs`` line)."""
    match = re.search(r"(\d+) requests in", output)
    return int(match.group(1)) if match else 0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stats() -> Iterator[tuple[int, int, int, int]]:
    """(pid, parent pid, process group, CPU ticks: user + system) of every live process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        yield int(entry.name), int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12])


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes in process group ``pgid``,
    its leader (the supervisor, which serves no request) left out."""
    ticks = sum(cpu for pid, _, group, cpu in _proc_stats() if group == pgid and pid != pgid)
    return ticks / _CLOCK_TICKS


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of every live descendant of process ``root``, whatever
    its process group (``serve --with-workers`` starts each child in a session of its own)."""
    stats = list(_proc_stats())
    parent = {pid: ppid for pid, ppid, _, _ in stats}

    def below_root(pid: int) -> bool:
        for _ in range(64):  # a bounded walk up the tree
            pid = parent.get(pid, 0)
            if pid == root:
                return True
            if pid <= 1:
                return False
        return False

    return sum(cpu for pid, _, _, cpu in stats if below_root(pid)) / _CLOCK_TICKS


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in sock.groups()) if sock else 0
    return rps, p50, p99, int(non.group(1)) if non else 0, errors


def run_wrk(
    url: str,
    path: str,
    script: Path,
    tokens: Path,
    *,
    connections: int,
    duration_s: int,
    threads: int = 2,
    pause_ms: int | None = None,
) -> str:
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        path,
        str(tokens),
    ]
    if pause_ms is not None:
        args.append(str(pause_ms))
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 60, check=True)
    return done.stdout


async def _prepare(redis_url: str, namespace: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    try:
        await peer.seed(engine.redis, namespace)
        await engine.create_sale(
            SaleCreate(
                name="bench",
                sale_id=SALE_ID,
                serials=SerialsSpec(range=(1, 90_000_000)),
                per_user_limit=1_000_000,
            )
        )
    finally:
        await engine.aclose()


async def _cleanup(redis_url: str, namespace: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    try:
        batch: list[bytes] = []
        async for key in engine.redis.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await engine.redis.unlink(*batch)
                batch.clear()
        if batch:
            await engine.redis.unlink(*batch)
    finally:
        await engine.aclose()


def server_process(
    server: str, workers: int, port: int, env: dict[str, str], log: Path, *flags: str
) -> ChildProcess:
    """``flashsale serve`` with `server`, `workers` and `flags` (``--with-workers``), ready
    once /health answers."""
    cmd = [
        sys.executable,
        "-m",
        "flashsale.cli.main",
        "serve",
        "--server",
        server,
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *flags,
    ]
    return loopback_server(cmd, port, env, log)


@dataclass(frozen=True)
class Load:
    """What wrk sends: its two scripts and the buyers' tokens, written once per run."""

    closed: Path
    paced: Path
    tokens: Path

    @classmethod
    def write(cls, workdir: Path) -> Load:
        load = cls(workdir / "closed.lua", workdir / "paced.lua", workdir / "tokens.txt")
        load.closed.write_text(_CLOSED_LUA)
        load.paced.write_text(_PACED_LUA)
        names = (f"buyer-{i}" for i in range(N_BUYERS))
        load.tokens.write_text("".join(mint_token(SECRET, name) + "\n" for name in names))
        return load

    def wrk(
        self, url: str, path: str, connections: int, seconds: int, pause_ms: int | None = None
    ) -> str:
        script = self.closed if pause_ms is None else self.paced
        return run_wrk(
            url,
            path,
            script,
            self.tokens,
            connections=connections,
            duration_s=seconds,
            pause_ms=pause_ms,
        )

    def measured(
        self,
        pgid: int | None,
        url: str,
        path: str,
        connections: int,
        seconds: int,
        pause_ms: int | None = None,
        cpu_s: Callable[[int], float] = group_cpu_s,
    ) -> tuple[str, float]:
        """wrk's output, and the CPU µs per request of process group ``pgid`` over it
        (or what else ``cpu_s`` counts of that process)."""
        assert pgid is not None  # started: it leads a process group of its own
        cpu_before = cpu_s(pgid)
        out = self.wrk(url, path, connections, seconds, pause_ms)
        cpu = cpu_s(pgid) - cpu_before
        n = wrk_requests(out)
        return out, 1e6 * cpu / n if n else float("nan")


def server_env(redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    """The environment of a bench server: its Redis namespace, the bench's JWT secret, the
    echo endpoint on, no rate limit, no inherited metrics directory."""
    env = {
        **os.environ,
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_NAMESPACE": namespace,
        "FLASHSALE_JWT_SECRET": SECRET,
        "FLASHSALE_BENCH_ENDPOINTS": "1",
        **extra,
    }
    env.pop("FLASHSALE_IP_RATE_PER_S", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def bench_server(server: str, args: argparse.Namespace, workdir: Path) -> list[WrkResult]:
    namespace = f"bench{secrets.token_hex(4)}"
    redis_url = args.redis_url
    load = Load.write(workdir)
    port = free_port()
    env = server_env(redis_url, namespace)
    asyncio.run(_prepare(redis_url, namespace))
    process = server_process(server, args.workers, port, env, workdir / f"{server}.log")
    peer_port = free_port()
    rival = peer.process(args.workers, peer_port, env, workdir / f"peer-{server}.log")
    ours, theirs = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
    purchase = f"/v1/sales/{SALE_ID}/purchase"
    results: list[WrkResult] = []
    phases = [("bare POST (echo)", ours, ECHO), ("purchase", ours, purchase)]
    phases.append((PEER, theirs, peer.PURCHASE))

    def measured(
        label: str, url: str, path: str, connections: int, pause_ms: int | None
    ) -> WrkResult:
        pgid = process.pid if url == ours else rival.pid
        out, cpu_us = load.measured(pgid, url, path, connections, args.duration, pause_ms)
        figures = parse_wrk(out)
        return WrkResult(
            label, server, args.workers, connections, *figures, wrk_requests(out), cpu_us
        )

    try:
        with process, rival:  # either failing to start stops the other
            for _, url, path in phases:  # warm-up: JIT-free, but caches, pools, token cache
                load.wrk(url, path, args.connections, args.warmup)
            for label, url, path in phases:
                results.append(measured(label, url, path, args.connections, None))
            rate = args.paced_rate or args.paced_share * results[0].rps
            pause_ms = max(1, round(1000 * args.paced_connections / rate))
            for label, url, path in phases:
                paced = f"{label}, paced"
                results.append(measured(paced, url, path, args.paced_connections, pause_ms))
    finally:
        asyncio.run(_cleanup(redis_url, namespace))
    return results


def markdown(results: list[WrkResult], command: str) -> str:
    lines = [
        "| server | workers | endpoint | connections | req/s | p50 ms | p99 ms | errors "
        "| CPU µs/req | vs bare |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    bare: dict[tuple[str, int], float] = {}
    for r in results:
        if r.label.startswith("bare"):
            bare[(r.server, r.connections)] = r.rps
        base = bare.get((r.server, r.connections))
        ratio = f"{r.rps / base:.2f}×" if base and not r.label.startswith("bare") else "1.00×"
        lines.append(
            f"| {r.server} | {r.workers} | {r.label} | {r.connections} | {r.rps:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.non_2xx + r.socket_errors} | "
            f"{r.cpu_us:.1f} | {ratio} |"
        )
    lines.append("")
    lines += summary(results)
    lines.append("")
    lines.append(f"Reproduce: `{command}`")
    return "\n".join(lines)


def summary(results: list[WrkResult]) -> list[str]:
    """One line per server: the figures issue #14 asks for, each beside its baseline."""
    lines = []
    for server in dict.fromkeys(r.server for r in results):
        by = {r.label: r for r in results if r.server == server}
        bare, buy = by.get("bare POST (echo)"), by.get("purchase")
        bare_paced, buy_paced = by.get("bare POST (echo), paced"), by.get("purchase, paced")
        if not (bare and buy and bare_paced and buy_paced):
            continue
        lines.append(
            f"- {server}: purchase ÷ bare POST **{buy.rps / bare.rps:.2f}×** "
            f"({buy.rps:,.0f} / {bare.rps:,.0f} req/s); CPU per request "
            f"{buy.cpu_us:.1f} µs vs {bare.cpu_us:.1f} µs ({buy.cpu_us / bare.cpu_us:.2f}×); "
            f"p99 at {buy_paced.connections:,} paced connections ({bare_paced.rps:,.0f} req/s) "
            f"{buy_paced.p99_ms:.1f} ms vs {bare_paced.p99_ms:.1f} ms"
        )
        rival, rival_paced = by.get(PEER), by.get(f"{PEER}, paced")
        if rival and rival_paced:
            lines.append(
                f"- {server}: purchase ÷ the featureless peer (FastAPI, uvicorn, same workers) "
                f"**{buy.rps / rival.rps:.2f}×** (goal 1.3×; {buy.rps:,.0f} / {rival.rps:,.0f} "
                f"req/s; the peer ÷ bare POST {rival.rps / bare.rps:.2f}×); CPU per request "
                f"{buy.cpu_us:.1f} µs vs {rival.cpu_us:.1f} µs; paced p99 "
                f"{buy_paced.p99_ms:.1f} ms vs {rival_paced.p99_ms:.1f} ms"
            )
    return lines


def load_parser(doc: str | None, *, duration: int, warmup: int) -> argparse.ArgumentParser:
    """The options every wrk bench of a served app takes: workers, phase lengths, and
    the closed-loop and paced connections."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0] if doc else None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=duration, help="seconds per phase")
    parser.add_argument("--warmup", type=int, default=warmup, help="warm-up s per endpoint")
    parser.add_argument("--connections", type=int, default=64, help="closed-loop connections")
    parser.add_argument("--paced-connections", type=int, default=1000)
    return parser


def parser() -> argparse.ArgumentParser:
    parser = load_parser(__doc__, duration=10, warmup=2)
    parser.add_argument("--server", choices=["granian", "uvicorn", "both"], default="granian")
    parser.add_argument(
        "--paced-share",
        type=float,
        default=0.2,
        help="paced phases offer this share of the bare POST's closed-loop req/s",
    )
    parser.add_argument(
        "--paced-rate", type=float, default=None, help="offered req/s in total (else the share)"
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="Redis to use; default: a private embedded one, so other traffic on a shared "
        "Redis does not blur the figures",
    )
    return parser


def run(argv: list[str]) -> str:
    """The Markdown report of one run with these command-line arguments (wrk installed)."""
    args = parser().parse_args(argv)
    servers = ["granian", "uvicorn"] if args.server == "both" else [args.server]
    results: list[WrkResult] = []
    with contextlib.ExitStack() as stack:
        if args.redis_url is None:
            args.redis_url = stack.enter_context(EmbeddedRedis()).url
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="flashsale-bench-"))
        for server in servers:
            results.extend(bench_server(server, args, Path(tmp)))
    shown = [a for a in argv if not a.startswith("redis://")]
    if "--redis-url" in shown:
        shown.remove("--redis-url")
    command = "python -m flashsale.bench.http " + " ".join(shlex.quote(a) for a in shown)
    return markdown(results, command.strip())


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    parser().parse_args(argv)  # --help and bad arguments before anything starts
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    print(run(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
