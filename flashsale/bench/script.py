"""The purchase script against the reference purchase, in Redis alone, in the same run.

Run: ``flashsale bench script`` (or ``python -m flashsale.bench.script``); ``flashsale
bench`` runs it as its ``script`` part.

``bench/lua/reference-purchase.lua`` is the least a purchase can do in Redis (the
shared perf README): status and window, the buyer's count against the limit, a
released serial or the next draw, one packed order, its expiry, one packed event.
Both scripts are EVALSHA'd by ``redis-benchmark -c 50`` at ``-P 1`` and ``-P 16``,
each on a sale prepared the same way (10^8 serials in a range, a limit no buyer
reaches, buyers ``u<12 random digits>`` over 10^6 of them), alternating within
each run so both see the same machine. The figure is our rate ÷ the reference's
(goal ≥ 0.8×). Every run is bounded by ``--requests``.

Rates on a shared machine swing by ±20 %; Redis's own CPU per call does not. So the
bench also prices each script alone (``cost``): ``--rounds`` rounds, each running
both scripts ``--calls`` times (``redis-benchmark -c 1 -P 16``, the order swapped every
round) and reading ``cmdstat_evalsha`` of ``INFO commandstats`` before and after each
(the difference, as ``CONFIG RESETSTAT`` then ``usec_per_call`` would give, without
resetting a shared server's statistics). The figures are medians: µs per call of each,
and the reference's ÷ ours (the rate ratio Redis alone would give; goal ≥ 0.8×).

On a busy 2-core host even that swings by ±30 % from one round to the next, more than
a change to the script moves it. ``--instructions N`` (needs valgrind) counts what no
other load changes: the instructions Redis runs per call of each script (N calls
after a warm-up, a private ``redis-server`` under callgrind, reset before and dumped
after each script).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from flashsale.bench.common import Figure, bench_redis_url, machine_line
from flashsale.devservers.ports import free_port
from flashsale.engine import scripts
from flashsale.engine.engine import Engine
from flashsale.engine.models import FAR_FUTURE_MS, SaleCreate, SerialsSpec

TOTAL = 100_000_000
LIMIT = 1_000_000
BUYERS = 1_000_000  # redis-benchmark -r: buyer ids repeat, as in the reference's command
PIPELINES = (1, 16)


def reference_source() -> str:
    return resources.files("flashsale.bench").joinpath("lua/reference-purchase.lua").read_text()


def _benchmark(
    url: str, requests: int, pipeline: int, command: list[str], clients: int = 50
) -> float:
    """Calls per second of ``redis-benchmark -c <clients>`` sending ``command``."""
    parsed = urlparse(url)
    argv = [shutil.which("redis-benchmark") or "redis-benchmark"]
    argv += ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
    argv += ["-c", str(clients), "-n", str(requests), "-P", str(pipeline)]
    argv += ["-r", str(BUYERS), "-q"]
    out = subprocess.run(
        argv + command, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    match = re.search(r"([\d.]+) requests per second", out.replace(",", ""))
    if not match:
        raise RuntimeError(f"unexpected redis-benchmark output: {out!r}")
    return float(match.group(1))


class Pair:
    """Our purchase script and the reference, each on its own fresh sale per run."""

    def __init__(self, engine: Engine, url: str, run_tag: str) -> None:
        self.engine, self.url, self.run_tag = engine, url, run_tag
        self.reference_sha = hashlib.sha1(reference_source().encode()).hexdigest()
        self.ours = scripts.load("purchase")

    async def load(self) -> None:
        await self.engine.redis.script_load(reference_source())
        await self.engine.redis.script_load(self.ours.source)

    async def ours_command(self, label: str) -> tuple[str, list[str]]:
        sale_id = f"script-{self.run_tag}-{label}"
        await self.engine.create_sale(
            SaleCreate(
                sale_id=sale_id,
                name="script bench",
                serials=SerialsSpec(range=(1, TOTAL)),
                per_user_limit=LIMIT,
                price_cents=9900,
                start_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
        k = self.engine.keys(sale_id)
        now = str(self.engine.clock())
        order_id, deadline = f"{sale_id}.00000000__rand_int__", str(FAR_FUTURE_MS)
        args = [sale_id, "u__rand_int__", "", now, order_id, deadline]  # as purchase_argv
        command = ["EVALSHA", self.ours.sha, str(self.ours.num_keys), *k.purchase_keys(), *args]
        return sale_id, command

    async def reference_command(self, label: str) -> tuple[str, list[str]]:
        tag = f"{{ref-{self.run_tag}-{label}}}"
        keys = [f"{tag}:{name}" for name in ("m", "b", "r", "o", "x", "e")]
        await self.engine.redis.hset(
            keys[0],
            mapping={
                "status": "open",
                "start_ms": 0,
                "end_ms": 99_999_999_999_999,
                "limit": LIMIT,
                "total": TOTAL,
                "drawn": 0,
                "price": 9900,
            },
        )
        now = str(self.engine.clock())
        return tag, ["EVALSHA", self.reference_sha, "6", *keys, "u__rand_int__", now]

    async def drop(self, sale_id: str | None, tag: str | None) -> None:
        if sale_id is not None:
            await self.engine.redis.unlink(*self.engine.keys(sale_id).all_fixed())
            await self.engine.redis.srem(f"{self.engine.namespace}:sales", sale_id)
        if tag is not None:
            await self.engine.redis.unlink(*[f"{tag}:{n}" for n in ("m", "b", "r", "o", "x", "e")])


async def _evalsha_usec(engine: Engine) -> tuple[int, int]:
    """(calls, microseconds) Redis spent in EVALSHA so far (INFO commandstats)."""
    stats = (await engine.redis.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def _run(
    engine: Engine, url: str, requests: int, pipeline: int, command: list[str], clients: int = 50
) -> tuple[float, float]:
    """(calls per second, Redis microseconds per call) of one redis-benchmark run."""
    calls0, usec0 = await _evalsha_usec(engine)
    rate = await asyncio.to_thread(_benchmark, url, requests, pipeline, command, clients)
    calls1, usec1 = await _evalsha_usec(engine)
    return rate, (usec1 - usec0) / max(calls1 - calls0, 1)


async def measure(url: str, runs: int, requests: int) -> dict[str, Figure]:
    """``script-p<N>`` / ``reference-p<N>`` calls per second and their ``ratio-p<N>``;
    ``script-us`` / ``reference-us``: Redis's own time per call (INFO commandstats), the
    figure least disturbed by other load on the machine."""
    engine = Engine.from_url(url, namespace="bench-script", max_connections=4)
    seen: dict[str, list[float]] = {}
    try:
        for run in range(runs):
            pair = Pair(engine, url, str(run))
            await pair.load()
            for pipeline in PIPELINES:
                label = f"p{pipeline}"
                sale_id, ours = await pair.ours_command(label)
                tag, reference = await pair.reference_command(label)
                try:
                    rate, us = await _run(engine, url, requests, pipeline, ours)
                    base, base_us = await _run(engine, url, requests, pipeline, reference)
                finally:
                    await pair.drop(sale_id, tag)
                seen.setdefault(f"script-{label}", []).append(rate)
                seen.setdefault(f"reference-{label}", []).append(base)
                seen.setdefault(f"ratio-{label}", []).append(rate / base)
                seen.setdefault("script-us", []).append(us)
                seen.setdefault("reference-us", []).append(base_us)
                seen.setdefault("ratio-us", []).append(base_us / us)
    finally:
        await engine.aclose()
    return {name: Figure(tuple(values)) for name, values in seen.items()}


async def cost(url: str, rounds: int, calls: int) -> dict[str, Figure]:
    """Redis's own µs per call of each script, alternated ``rounds`` times (the order
    swapped every round), ``calls`` calls each: ``cost-script`` / ``cost-reference`` and
    ``cost-ratio`` (reference µs ÷ ours, per round)."""
    engine = Engine.from_url(url, namespace="bench-script-cost", max_connections=4)
    seen: dict[str, list[float]] = {}
    try:
        pair = Pair(engine, url, "cost")
        await pair.load()
        for round_ in range(rounds):
            sale_id, ours = await pair.ours_command(f"c{round_}")
            tag, reference = await pair.reference_command(f"c{round_}")
            us: dict[str, float] = {}
            try:
                order = [("script", ours), ("reference", reference)]
                for name, command in order if round_ % 2 == 0 else order[::-1]:
                    us[name] = (await _run(engine, url, calls, 16, command, clients=1))[1]
            finally:
                await pair.drop(sale_id, tag)
            seen.setdefault("cost-script", []).append(us["script"])
            seen.setdefault("cost-reference", []).append(us["reference"])
            seen.setdefault("cost-ratio", []).append(us["reference"] / us["script"])
    finally:
        await engine.aclose()
    return {name: Figure(tuple(values)) for name, values in seen.items()}


async def refusal_cost(url: str, history: int, requests: int) -> tuple[float, float]:
    """Redis µs per refused purchase (limit reached) of a buyer with ``history`` released
    orders and one live one, and of a buyer with just the live one (issue #12)."""
    engine = Engine.from_url(url, namespace="bench-refusal", max_connections=4)
    script = scripts.load("purchase")
    try:
        sale_id = f"refusal-{history}"
        await engine.create_sale(
            SaleCreate(
                sale_id=sale_id,
                name="refusal bench",
                serials=SerialsSpec(range=(1, history + 10)),
                start_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
        for _ in range(history):  # the long history: bought and cancelled
            order = (await engine.purchase(sale_id, "veteran")).order
            await engine.cancel(order.order_id)
        for user in ("veteran", "newcomer"):
            await engine.purchase(sale_id, user)  # now at the limit of 1
        k = engine.keys(sale_id)
        out: list[float] = []
        for user in ("veteran", "newcomer"):
            # as purchase_argv sends it, with a deadline as the engine always sends
            args = [sale_id, user, "", str(engine.clock()), f"{sale_id}.{'0' * 20}"]
            args.append(str(FAR_FUTURE_MS))
            command = ["EVALSHA", script.sha, str(script.num_keys), *k.purchase_keys(), *args]
            out.append((await _run(engine, url, requests, 16, command))[1])
        await engine.redis.unlink(*k.all_fixed())
        await engine.redis.srem(f"{engine.namespace}:sales", sale_id)
    finally:
        await engine.aclose()
    return out[0], out[1]


def _callgrind_total(out: Path) -> int:
    """Instructions counted since the last reset, from the dump ``callgrind_control -d``
    just wrote (taken away: the next one is then the only one)."""
    for dump in out.glob("cg.out.*"):
        text = dump.read_text()
        dump.unlink()
        for line in text.splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no dump")


async def instructions(calls: int, warm: int = 500) -> dict[str, float]:
    """Instructions Redis runs per call of ours and of the reference: a private
    redis-server under valgrind's callgrind, ``warm`` calls of each first (past the
    buyers hash's small listpack form), then ``calls`` counted."""

    async def control(flag: str) -> None:
        await asyncio.to_thread(
            subprocess.run, ["callgrind_control", flag, str(server.pid)], capture_output=True
        )

    with tempfile.TemporaryDirectory(prefix="flashsale-cg-") as tmp:
        out, port = Path(tmp), free_port()
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out"]
        argv += ["redis-server", "--port", str(port), "--save", "", "--hz", "1", "--dir", tmp]
        server = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"redis://127.0.0.1:{port}/0"
        engine = Engine.from_url(url, namespace="bench-script-ir", max_connections=2)
        try:
            for _ in range(600):  # up to 60 s for valgrind to start the server
                try:
                    await engine.redis.ping()
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            pair = Pair(engine, url, "ir")
            await pair.load()
            _, ours = await pair.ours_command("ir")  # the server goes with its keys
            _, reference = await pair.reference_command("ir")
            counts: dict[str, float] = {}
            for name, command in (("script", ours), ("reference", reference)):
                await asyncio.to_thread(_benchmark, url, warm, 16, command, 1)
                await control("-z")
                await asyncio.to_thread(_benchmark, url, calls, 16, command, 1)
                await control("-d")
                counts[name] = await asyncio.to_thread(_callgrind_total, out) / calls
        finally:
            await engine.aclose()
            server.terminate()
            await asyncio.wait_for(server.wait(), 60)
    return counts


def report(figures: dict[str, Figure], requests: int) -> str:
    lines = [
        f"Purchase script vs the reference purchase, redis-benchmark -c 50, {requests:,} calls "
        f"per run, medians (spread), {machine_line()}",
        "",
        "| pipeline | lua/purchase-10.lua calls/s | reference calls/s | ratio (goal ≥ 0.8×) |",
        "|---|---:|---:|---:|",
    ]
    for pipeline in PIPELINES:
        label = f"p{pipeline}"
        lines.append(
            f"| -P {pipeline} | {figures[f'script-{label}'].show()} | "
            f"{figures[f'reference-{label}'].show()} | {figures[f'ratio-{label}'].show('×', 2)} |"
        )
    lines.append(
        f"| Redis µs per call (INFO commandstats) | {figures['script-us'].show(' µs', 1)} | "
        f"{figures['reference-us'].show(' µs', 1)} | {figures['ratio-us'].show('×', 2)} |"
    )
    if "cost-script" in figures:
        rounds = len(figures["cost-script"].runs)
        lines.append(
            f"| Redis µs per call, each alone ({rounds} rounds alternated, -c 1 -P 16) | "
            f"{figures['cost-script'].show(' µs', 1)} | "
            f"{figures['cost-reference'].show(' µs', 1)} | "
            f"{figures['cost-ratio'].show('×', 2)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--history", type=int, default=10_000, help="past orders (refusal)")
    parser.add_argument("--rounds", type=int, default=7, help="alternated cost rounds")
    parser.add_argument("--calls", type=int, default=50_000, help="calls per cost round")
    parser.add_argument(
        "--instructions", type=int, default=0, help="calls counted under valgrind (0: none)"
    )
    args = parser.parse_args(argv)
    if args.instructions:
        counts = asyncio.run(instructions(args.instructions))
        ours, base = counts["script"], counts["reference"]
        print(
            f"Instructions per call (valgrind, {args.instructions:,} calls each): "
            f"lua/purchase-10.lua {ours:,.0f}, reference {base:,.0f}, "
            f"reference ÷ ours {base / ours:.3f}×"
        )
        return
    with bench_redis_url() as url:
        figures = asyncio.run(measure(url, args.runs, args.requests))
        figures |= asyncio.run(cost(url, args.rounds, args.calls))
        veteran, newcomer = asyncio.run(refusal_cost(url, args.history, args.requests))
    print(report(figures, args.requests))
    print(
        f"\nRefused purchase (limit reached), Redis µs per call: a buyer with "
        f"{args.history:,} past orders {veteran:.1f} µs, with none {newcomer:.1f} µs "
        f"({veteran / newcomer:.2f}×; goal: the same)"
    )


if __name__ == "__main__":
    main()
