"""A load test's options: the scenario, its size and bounds, each scenario's defaults.

Shared by the runners (``runner.py``: drop, bots, browse; ``checkout_run.py``) and what
they use (``housekeeping.py``, ``verdict.py``), so it imports none of them.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCENARIOS = {
    "drop": "DropBuyer",
    "bots": "Bot",
    "browse": "Browser",
    "checkout": "CartBuyer",
    "burst": "BurstBuyer",  # the demo's purchases (demo_burst.py), not on the command line
}
REPORTS = Path(__file__).resolve().parent / "reports"
DROP_SHARES = {
    # of all buyers
    "retry": 0.15,  # same Idempotency-Key again after a simulated timeout
    "greedy": 0.15,  # try again and again
    # of the buyers who got an order (the rest let it expire)
    "pay_provider": 0.3,
    "pay_balance": 0.2,
    "cancel": 0.15,
}


@dataclass
class Options:
    scenario: str
    host: str
    users: int | None = None
    run_time_s: int | None = None
    spawn_rate: float | None = None
    serials: int | None = None
    per_user_limit: int = 1
    per_ip_limit: int | None = None
    buckets: int = 1  # a bucketed drop (docs/design.md, "Bucketed drops") when > 1
    payment_timeout_s: int | None = None
    processes: int = 1
    drain_timeout_s: float = 120.0
    max_error_rate: float = 0.01
    skew_s: float = 2.0
    admin_token: str | None = None
    reports_dir: Path = REPORTS
    keep: bool = False
    json_out: bool = False  # the report as one JSON object (the progress goes to stderr)
    run: str = ""

    @property
    def payers(self) -> int:
        """Buyers prepared to pay from a wallet (drop): their share of the serials."""
        if self.scenario != "drop" or not self.serials or not self.users:
            return 0
        return min(self.users, math.ceil(self.serials * DROP_SHARES["pay_balance"]))

    @property
    def payer_prefix(self) -> str:
        return f"{self.run}-payer-"

    def resolve(self) -> Options:
        """Fill in each scenario's defaults."""
        s = self.scenario
        if s not in SCENARIOS:
            raise ValueError(f"unknown scenario {s!r}: one of {', '.join(SCENARIOS)}")
        users = (
            self.users
            or {
                "drop": 5000,
                "bots": 12,
                "browse": 200,
                "checkout": 300,
                "burst": 5000,
            }[s]
        )
        spawn = self.spawn_rate or {
            "drop": max(100.0, users / 5),
            "burst": max(100.0, users / 5),
            "bots": float(users),
        }.get(s, 50.0)
        return Options(
            **{
                **self.__dict__,
                "users": users,
                "spawn_rate": spawn,
                "run_time_s": self.run_time_s
                or {"drop": 120, "bots": 20, "browse": 30, "checkout": 60, "burst": 120}[s],
                "serials": self.serials
                or {"drop": max(1, users // 10), "bots": 1000, "checkout": max(1, users // 3)}.get(
                    s, max(1, users // 4)
                ),
                "per_ip_limit": self.per_ip_limit or (2 if s == "bots" else None),
                "payment_timeout_s": self.payment_timeout_s
                or {"drop": 10, "bots": 600, "browse": 30, "checkout": 10, "burst": 60}[s],
                "run": self.run or f"{s}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}",
            }
        )
