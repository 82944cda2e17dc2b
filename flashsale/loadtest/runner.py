"""``flashsale loadtest drop|bots|browse``: create a sale, run locust headless, judge.

1. (drop) prepares the buyers who will pay from a wallet before the sale
   exists (housekeeping.py: the argon2 hashing stays out of the timed run), then
   creates a sale of its own through the admin API (token minted from
   ``FLASHSALE_JWT_SECRET``, or ``--admin-token``);
2. runs the scenario (``scenarios.py``) with locust in a child process, bounded
   by ``--run-time`` (a drop ends early once every buyer is done), keeping
   locust's CSV and HTML reports and what every client saw under
   ``loadtest/reports/<run>/``;
3. waits until the write-behind has drained (audit ``lag`` 0) and, for a drop,
   until no order is pending any more, then asks the server's audit;
4. cleans up unless ``--keep``: its sale is closed; the test money it credited
   is marked in each ledger entry's reason (``loadtest <run>``);
5. prints a summary, one ``VIOLATION: <what>`` line per broken invariant, and
   ``verdict: PASS`` or ``verdict: FAIL`` as the last line.

The verdict (verdict.py) joins the audit with what the clients saw: two orders holding one
serial at the same time, a buyer over the limit, a replay that got another
order, an acknowledged order missing from PostgreSQL fail the run even when
the server's audit is clean; so does a payment path that never worked (every
balance payment, or every provider payment, refused).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from flashsale.api.tokens import mint_token
from flashsale.loadtest.generator import generator_lines
from flashsale.loadtest.housekeeping import PASSWORD, PRICE_CENTS, clean_up, prepare_payers
from flashsale.loadtest.options import DROP_SHARES, SCENARIOS, Options
from flashsale.loadtest.seen import Seen, epoch_of
from flashsale.loadtest.verdict import judge, to_read_back
from flashsale.settings import Settings, config_errors

LOCUSTFILE = Path(__file__).resolve().with_name("scenarios.py")
READ_BACK_MAX = 2000  # orders read back at the end (see ``to_read_back``), bounded
RECORDS_WAIT_S = 30.0  # the longest wait for the locust processes' records after it ended
SPAWN_MARGIN_S = 2.0  # a drop opens this long after its users spawned (their first GET)


@dataclass
class LocustStats:
    """Rows of locust's ``<prefix>_stats.csv`` by name (``Aggregated`` for all)."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> LocustStats:
        """The final figures the locustfile wrote, else locust's last CSV (≤ 1 s stale)."""
        exact = directory / "stats.json"
        if exact.exists():
            return cls(json.loads(exact.read_text()))
        path = directory / "locust_stats.csv"
        if not path.exists():
            return cls()
        with path.open(newline="") as f:
            return cls({row["Name"]: row for row in csv.DictReader(f)})

    def number(self, name: str, column: str) -> float:
        try:
            return float(self.rows.get(name, {}).get(column, "nan"))
        except (TypeError, ValueError):
            return float("nan")

    def shown(self, name: str | None, column: str) -> str:
        """A figure as printed (milliseconds, a rate): rounded, ``?`` when missing."""
        value = self.number(name or "", column)
        return "?" if value != value else f"{value:,.0f}"

    def busiest(self, prefix: str) -> str | None:
        names = [n for n in self.rows if n.startswith(prefix)]
        return max(names, key=lambda n: self.number(n, "Request Count"), default=None)


@dataclass
class Outcome:
    violations: list[str]
    lines: list[str]

    @property
    def ok(self) -> bool:
        return not self.violations


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sale_body(opts: Options, sale_id: str) -> dict[str, Any]:
    assert opts.serials and opts.users and opts.spawn_rate
    body: dict[str, Any] = {
        "sale_id": sale_id,
        "name": f"load test {opts.run}",
        "serials": {"range": [1, opts.serials]},
        "assignment": "random" if opts.scenario == "drop" else "sequential",
        "per_user_limit": opts.per_user_limit,
        "payment_timeout_s": opts.payment_timeout_s,
        "price_cents": PRICE_CENTS,
        "currency": "CNY",
    }
    if opts.per_ip_limit:
        body["per_ip_limit"] = opts.per_ip_limit
    if opts.buckets > 1:
        body["buckets"] = opts.buckets
    if opts.scenario == "drop":
        body["start_at"] = opening(opts)
    return body


def opening(opts: Options) -> str:
    """The start of a sale whose buyers all arrive while it is scheduled (a held locust,
    released right after the sale is created, spawns them) and fire at its opening second,
    RFC 3339."""
    assert opts.users and opts.spawn_rate
    opens_in = min(30.0, opts.users / opts.spawn_rate + SPAWN_MARGIN_S)
    start = datetime.now(UTC) + timedelta(seconds=opens_in)
    return start.isoformat().replace("+00:00", "Z")


def bucketed(opts: Options) -> str:
    """How the run's sale is spread, for its report lines ('' for one bucket)."""
    return f" in {opts.buckets} buckets" if opts.buckets > 1 else ""


def plan(opts: Options, sale_id: str, out_dir: Path) -> dict[str, Any]:
    return {
        "run": opts.run.replace("-", "")[-20:],
        "scenario": opts.scenario,
        "sale_id": sale_id,
        "out_dir": str(out_dir),
        "users": opts.users,
        "processes": opts.processes,
        "payers": opts.payers,
        "payer_prefix": opts.payer_prefix,
        "password": PASSWORD,
        "per_user_limit": opts.per_user_limit,
        "shares": DROP_SHARES,
        "greedy_tries": 8,
        "not_open_retries": 40,
        "bot_ips": ["203.0.113.7", "203.0.113.8", "198.51.100.9"],
        "bot_max_attempts": 3000,
    }


def locust_command(opts: Options, out_dir: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        opts.host,
        "--users",
        str(opts.users),
        "--spawn-rate",
        str(opts.spawn_rate),
        "--run-time",
        f"{opts.run_time_s}s",
        "--csv",
        str(out_dir / "locust"),
        "--html",
        str(out_dir / "locust.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if opts.processes > 1:
        command += ["--processes", str(opts.processes)]
    return [*command, SCENARIOS[opts.scenario]]


class Locust:
    """The scenario's locust in a child process (``start``, then ``wait``).

    ``held``: no user spawns before ``go()``. The master (or the only process) writes
    ``locust.ready`` once locust has started (at ``init``) and waits for ``locust.go``
    (``scenarios._hold_the_users``), so a sale created in between opens after the spawn
    alone (``opening``), whatever locust's start-up took: its imports alone took 5 s on
    the loaded 2-core machine, longer than the 2 s the drop allowed for it, and the
    buyers arrived after the opening.
    """

    def __init__(
        self,
        opts: Options,
        sale_id: str,
        out_dir: Path,
        secret: str,
        extra: dict[str, Any] | None = None,
        *,
        held: bool = False,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.opts, self.out_dir, self.held = opts, out_dir, held
        self._ready, self._go = out_dir / "locust.ready", out_dir / "locust.go"
        hold = {"hold": {"ready": str(self._ready), "go": str(self._go)}} if held else {}
        self._env = {
            **(os.environ if base_env is None else base_env),
            "FLASHSALE_LT": json.dumps(plan(opts, sale_id, out_dir) | (extra or {}) | hold),
            "FLASHSALE_JWT_SECRET": secret,
            "PYTHONUNBUFFERED": "1",
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Locust:
        with (self.out_dir / "locust.log").open("wb") as log:
            command = locust_command(self.opts, self.out_dir)
            self._process = subprocess.Popen(
                command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def ready(self, seconds: float = 120.0) -> bool:
        """Whether locust started and holds its users within ``seconds`` (``held``)."""
        assert self._process is not None
        deadline = time.monotonic() + seconds
        while not self._ready.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def go(self, opens_at: str = "") -> None:
        """Release the held users: they spawn, arrive and wait for the opening; the file
        carries ``opens_at`` (RFC 3339) to users that take it from there (``BurstBuyer``)."""
        partial = self._go.with_suffix(".partial")
        partial.write_text(opens_at)
        partial.replace(self._go)  # whole, or not there: the processes poll for it

    def wait(self) -> int:
        """Locust's exit code once it ended and every process wrote what its users saw; -9
        when it outlived its run by 90 s (killed)."""
        assert self._process is not None and self.opts.run_time_s is not None
        try:
            rc = self._process.wait(timeout=self.opts.run_time_s + 90)
        except subprocess.TimeoutExpired:
            self.stop()
            return -9
        self._records_written()
        return rc

    def _records_written(self, seconds: float = RECORDS_WAIT_S) -> None:
        """With ``--processes`` the master can exit before its workers wrote their
        ``seen-*.json`` (a demo read one file of three: 0 purchases); wait for them."""
        expected = 1 if self.opts.processes <= 1 else self.opts.processes + 1
        deadline = time.monotonic() + seconds
        while len(list(self.out_dir.glob("seen-*.json"))) < expected:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Kill locust if it still runs (its run failed before ``wait``)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def settle(
    client: httpx.Client,
    sale_id: str,
    admin: dict[str, str],
    seconds: float,
    *,
    until_no_pending: bool,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """Poll until the write-behind drained (and no order is pending, if asked).

    Returns (audit, sale, why it stopped waiting)."""
    deadline = time.monotonic() + seconds
    audit: dict[str, Any] | None = None
    sale: dict[str, Any] | None = None
    why = "timeout"
    refusals = 0
    while True:
        try:
            got = client.get(f"/v1/sales/{sale_id}")
            sale = got.json() if got.status_code == 200 else sale
            answer = client.get(f"/v1/sales/{sale_id}/audit", headers=admin)
        except httpx.HTTPError as exc:
            why = f"transport: {exc!r}"
        else:
            if answer.status_code == 200:
                audit = answer.json()
                drained = audit.get("lag") == 0
                pending = (sale or {}).get("reserved", 0)
                if drained and (not until_no_pending or pending == 0):
                    return audit, sale, "settled"
                why = f"lag {audit.get('lag')}, {pending} reserved"
            else:
                refusals += 1
                why = f"audit answered {answer.status_code}: {answer.text[:200]}"
                if refusals >= 5 and answer.status_code != 503:
                    return None, sale, why
        if time.monotonic() >= deadline:
            return audit, sale, why
        time.sleep(0.5)


def read_back(client: httpx.Client, admin: dict[str, str], order_ids: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for order_id in order_ids[:READ_BACK_MAX]:
        try:
            answer = client.get(f"/v1/orders/{order_id}", headers=admin)
        except httpx.HTTPError:
            continue
        if answer.status_code == 200:
            statuses[order_id] = str(answer.json().get("status"))
        else:
            statuses[order_id] = f"http {answer.status_code}"
    return statuses


def summary(
    opts: Options,
    seen: Seen,
    stats: LocustStats,
    audit: dict[str, Any] | None,
    sale: dict[str, Any] | None,
    out_dir: Path,
    sale_id: str,
    setup: list[str],
    opens_at: float | None = None,
) -> list[str]:
    orders = seen.orders()
    purchase = stats.busiest("purchase")
    refused = " · ".join(f"{k} {n:,}" for k, n in seen.refused.most_common()) or "none"
    lines = [
        f"flashsale loadtest {opts.scenario} · run {opts.run} · sale {sale_id} · {opts.host}",
        f"  users {opts.users:,} (spawn {opts.spawn_rate:,.0f}/s) · serials {opts.serials:,} · "
        f"per-user limit {opts.per_user_limit}"
        + (f" · per-IP limit {opts.per_ip_limit}" if opts.per_ip_limit else "")
        + (f" · {opts.buckets} buckets" if opts.buckets > 1 else "")
        + f" · load generator on {os.cpu_count()} cores",
        f"purchases: {seen.attempts:,} attempts · {len(orders):,} orders given "
        f"({sum(1 for b in seen.bought if b.replayed):,} replays)",
        f"  rejected  {sum(seen.refused.values()):,}: {refused}",
    ]
    if seen.replays:
        lines.append("  replays   " + " · ".join(f"{k} {n}" for k, n in seen.replays.items()))
    if seen.payments or seen.cancels:
        paid = " · ".join(f"{k} {n}" for k, n in sorted(seen.payments.items())) or "none"
        cancels = " · ".join(f"{k} {n}" for k, n in seen.cancels.items()) or "none"
        lines.append(f"  payments  {paid}")
        lines.append(f"  cancels   {cancels}")
    for kind, detail in sorted(seen.samples.items()):
        lines.append(f"  e.g. {kind}: {detail}")
    total = stats.number("Aggregated", "Request Count")
    lines += [
        f"requests: {sum(seen.requests.values()):,} sent · locust counted "
        f"{0 if total != total else total:,.0f} · {stats.shown('Aggregated', 'Requests/s')} req/s"
        f" · errors {sum(seen.errors.values()):,}"
        + (
            f" ({', '.join(f'{k} {n}' for k, n in seen.errors.most_common(3))})"
            if seen.errors
            else ""
        ),
        f"latency {purchase or 'purchase'}: p50 {stats.shown(purchase, '50%')} ms · "
        f"p95 {stats.shown(purchase, '95%')} ms · p99 {stats.shown(purchase, '99%')} ms",
        f"latency all requests: p50 {stats.shown('Aggregated', '50%')} ms · "
        f"p95 {stats.shown('Aggregated', '95%')} ms · p99 {stats.shown('Aggregated', '99%')} ms",
        *generator_lines(seen, opens_at, stats.shown(purchase, "99%")),
    ]
    if sale:
        lines.append(
            f"sale now: {sale.get('status')} · sold {sale.get('sold')} · reserved "
            f"{sale.get('reserved')} · available {sale.get('available')} of {sale.get('total')}"
        )
    if audit is not None:
        lines.append(
            f"audit: {'ok' if audit.get('ok') else 'NOT OK'} · "
            f"persisted {audit.get('persisted')} · lag {audit.get('lag')} · "
            f"{len(audit.get('violations', []))} violations"
        )
    else:
        lines.append("audit: no answer")
    lines += setup
    lines.append(f"reports: {out_dir} (locust.html, locust_stats.csv, seen-*.json, locust.log)")
    return lines


def begin(opts: Options) -> tuple[str, dict[str, str], Path]:
    """The JWT secret (buyer tokens are minted from it, whatever --admin-token says), the
    admin's headers and the run's report folder (made)."""
    with config_errors():
        secret = Settings.from_env().checked_jwt_secret()
    admin = _auth(opts.admin_token or mint_token(secret, "loadtest-ops", admin=True))
    out_dir = opts.reports_dir / opts.run
    out_dir.mkdir(parents=True, exist_ok=True)
    return secret, admin, out_dir


def reachable(client: httpx.Client, opts: Options, echo: Callable[[str], None]) -> bool:
    """Whether the server answers; if not, says so with a FAIL verdict."""
    try:
        client.get("/health")
    except httpx.HTTPError as exc:
        echo(f"could not reach {opts.host}: {exc!r}")
        echo("verdict: FAIL")
        return False
    return True


def timed_run(locust: Locust, echo: Callable[[str], None]) -> int:
    """Release locust's users if held, wait until it ended and say how long it took;
    locust's exit code."""
    started = time.monotonic()
    if locust.held:
        locust.go()
    rc = locust.wait()
    echo(f"locust finished in {time.monotonic() - started:.1f} s; settling ...")
    return rc


def conclude(lines: list[str], violations: list[str], echo: Callable[[str], None]) -> int:
    """The report, each violation and the verdict; 0 on PASS, 1 on FAIL."""
    for line in lines:
        echo(line)
    for violation in violations:
        echo(f"VIOLATION: {violation}")
    echo(f"verdict: {'PASS' if not violations else 'FAIL'}")
    return 0 if not violations else 1


def run(opts: Options, echo: Callable[[str], None] = print) -> int:
    """The whole load test; 0 on PASS, 1 on FAIL, 2 when it could not start."""
    opts = opts.resolve()
    if opts.scenario == "checkout":  # several drops and carts: checkout_run.run_checkout
        raise ValueError("the checkout scenario has a runner of its own: run_checkout")
    secret, admin, out_dir = begin(opts)
    sale_id = f"lt-{opts.run}"[:64]
    limits = httpx.Limits(max_connections=4)
    with httpx.Client(base_url=opts.host, timeout=30, limits=limits) as client:
        if not reachable(client, opts, echo):
            return 2
        setup_problems = prepare_payers(opts, secret, admin, echo)
        locust = Locust(opts, sale_id, out_dir, secret, held=True).start()
        try:
            if not locust.ready():  # the sale is made once locust is up: see ``Locust``
                echo(f"locust did not start: see {out_dir / 'locust.log'}")
                echo("verdict: FAIL")
                return 2
            created = client.post("/v1/sales", json=sale_body(opts, sale_id), headers=admin)
            if created.status_code != 201:
                echo(f"could not create the sale: {created.status_code} {created.text[:300]}")
                echo("verdict: FAIL")
                return 2
            drop = opts.scenario == "drop"
            opens_at = epoch_of(created.json().get("start_at")) if drop else None
            echo(
                f"sale {sale_id}: {opts.serials:,} serials{bucketed(opts)} for {opts.users:,} "
                f"users; running locust ({opts.scenario}, at most {opts.run_time_s} s) ..."
            )
            rc = timed_run(locust, echo)
        finally:
            locust.stop()
        seen = Seen.load_dir(out_dir)
        if not seen.buyers:
            tail = (out_dir / "locust.log").read_text(errors="replace")[-2000:]
            echo(f"locust recorded nothing; its log ends with:\n{tail}")
        audit, sale, why = settle(
            client,
            sale_id,
            admin,
            opts.drain_timeout_s,
            until_no_pending=opts.scenario == "drop",
        )
        statuses = read_back(client, admin, to_read_back(seen, opts.per_user_limit))
        cleanup = clean_up(client, opts, sale_id, admin)
    stats = LocustStats.read(out_dir)
    violations = setup_problems + judge(opts, seen, audit, sale, why, statuses, rc)
    (out_dir / "verdict.json").write_text(
        json.dumps({"violations": violations, "audit": audit, "sale": sale}, indent=1)
    )
    lines = summary(opts, seen, stats, audit, sale, out_dir, sale_id, cleanup, opens_at)
    verdict = "PASS" if not violations else "FAIL"
    if opts.json_out:
        report: dict[str, Any] = {"verdict": verdict, "violations": violations, "summary": lines}
        report |= {"sale_id": sale_id, "sale": sale, "audit": audit, "reports": str(out_dir)}
        print(json.dumps(report), flush=True)
        return 0 if not violations else 1
    return conclude(lines, violations, echo)
