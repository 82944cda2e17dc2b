"""The demo's burst, made by the load test's generator (issue #14).

``flashsale loadtest drop``'s machinery against the demo's own server: locust
(FastHttpUser) in a child process, held until the drop exists, its users spread over
``processes`` locust processes, spawned while the drop is scheduled and released
together at its opening (``BurstBuyer``: one user per buyer, firing its share of the
attempts at once). What the users were told comes back in their records (``Seen``);
the load test's client-side checks judge it, and the demo's later steps take its sold
orders as a ``BurstResult``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flashsale.loadtest.burst import BurstResult
from flashsale.loadtest.generator import generator_lines
from flashsale.loadtest.options import Options
from flashsale.loadtest.runner import Locust, LocustStats
from flashsale.loadtest.seen import Seen
from flashsale.loadtest.verdict import clients_violations

BUYER_PREFIX = "buyer-"  # the demo's buyers: buyer-00000, buyer-00001, ...
RUN = "burst"  # the locust run's folder inside the demo's report folder


@dataclass
class Burst:
    opts: Options
    seen: Seen
    stats: LocustStats
    opens_at: float | None
    locust_rc: int
    result: BurstResult

    @property
    def out_dir(self) -> Path:
        return self.opts.reports_dir / self.opts.run

    def violations(self) -> list[str]:
        """What the clients saw go wrong (the load test's checks), whatever the server says."""
        found = clients_violations(self.opts, self.seen, self.locust_rc)
        if not self.seen.buyers:
            found.append(f"locust recorded nothing: see {self.out_dir / 'locust.log'}")
        return found

    def lines(self) -> list[str]:
        """The clients' figures as the load test prints them: the achieved rate, purchase
        p50/p99, the opening second, the generator's own load and its bottleneck WARNING."""
        purchase = self.stats.busiest("purchase")
        p99 = self.stats.shown(purchase, "99%")
        seconds = self.seen.sending_seconds()
        sent = sum(self.seen.sent_ticks.values())
        rate = f"{sent / seconds:,.0f}/s" if seconds else "?"
        processes = self.opts.processes
        return [
            f"the clients: {self.opts.users:,} locust users over {processes} "
            f"process{'es' if processes != 1 else ''} sent {sent:,} purchases in "
            f"{seconds:.1f} s, {rate} · purchase p50 {self.stats.shown(purchase, '50%')} ms · "
            f"p99 {p99} ms",
            *generator_lines(self.seen, self.opens_at, p99),
        ]


def burst_options(
    url: str, buyers: int, serials: int, processes: int, reports_dir: Path
) -> Options:
    """One locust user per buyer, on the demo's drop (1 per buyer)."""
    return Options(
        scenario="burst",
        host=url,
        users=buyers,
        serials=serials,
        per_user_limit=1,
        processes=processes,
        reports_dir=reports_dir,
        run=RUN,
    ).resolve()


def burst_locust(
    opts: Options, sale_id: str, attempts: int, secret: str, env: Mapping[str, str]
) -> Locust:
    """The burst's locust, held until ``go()``: start it, create the sale to open at
    ``runner.opening(opts)`` once it is ``ready()``, then ``go()`` and ``wait()``."""
    out_dir = opts.reports_dir / opts.run
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"attempts": attempts, "buyer_prefix": BUYER_PREFIX}
    return Locust(opts, sale_id, out_dir, secret, extra, held=True, base_env=env)


def read_burst(opts: Options, locust_rc: int, opens_at: float | None, price_cents: int) -> Burst:
    """What the burst's users saw, from their records, once locust ended."""
    out_dir = opts.reports_dir / opts.run
    seen = Seen.load_dir(out_dir)
    result = BurstResult.from_seen(seen, price_cents)
    return Burst(opts, seen, LocustStats.read(out_dir), opens_at, locust_rc, result)
