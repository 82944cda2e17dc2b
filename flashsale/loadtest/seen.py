"""What the load-test clients saw, recorded in the locust process and read back by the wrapper.

Plain data and JSON only: this module never imports locust, so the wrapper and
the tests can read a run's records without gevent's monkey-patching. Every
locust process writes one ``seen-<pid>.json`` in the run's directory when it
quits; ``Seen.load_dir`` merges them.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

_STARTED = time.monotonic()  # this process's start, near enough (imported at start-up)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def epoch_of(iso: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time from the API (``Z`` or an offset)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Bought:
    """One order a client was told it holds (a 201, or a 200 replay of one)."""

    order_id: str
    serial: str
    buyer: str
    ip: str = ""
    sent_at: float = 0.0  # client clock, epoch seconds
    received_at: float = 0.0
    expires_at: float | None = None  # server clock, from the answer
    replayed: bool = False
    cancelled_at: float | None = None  # when the client sent a cancel that was accepted
    paid: str = ""  # "balance" once a balance payment succeeded; "provider" once paid at pay_url

    def earliest_release(self) -> float | None:
        """The earliest moment the order can have stopped holding its serial, if ever."""
        times = [t for t in (self.cancelled_at, self.expires_at) if t is not None]
        if self.paid == "balance":  # a paid order never returns its serial in a drop
            times = [t for t in (self.cancelled_at,) if t is not None]
        return min(times) if times else None


@dataclass
class Seen:
    """Everything one or more locust processes saw, merged."""

    attempts: int = 0  # purchase requests sent, retries included
    bought: list[Bought] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # purchase refusals by code
    errors: Counter[str] = field(default_factory=Counter)  # transport errors, 5xx, by kind
    requests: Counter[str] = field(default_factory=Counter)  # every request by name
    payments: Counter[str] = field(default_factory=Counter)  # "provider:started", ...
    cancels: Counter[str] = field(default_factory=Counter)
    replays: Counter[str] = field(default_factory=Counter)  # "same", "different", ...
    sale_views: int = 0
    problems: list[str] = field(default_factory=list)  # contract breaks a client saw itself
    samples: dict[str, str] = field(default_factory=dict)  # a refusal's first detail, by kind
    buyers: int = 0  # distinct users that ran
    finished: int = 0  # users that finished their journey (drop)
    # purchase requests by the 100 ms tick they were sent in (epoch seconds × 10)
    sent_ticks: Counter[int] = field(default_factory=Counter)
    # each locust process: (CPU seconds, wall seconds) over its life, to tell whether
    # the load generator itself was the bottleneck
    processes: list[tuple[float, float]] = field(default_factory=list)
    # each locust process: (CPU seconds, wall seconds) over the sale's opening second alone;
    # a process saturated in that second shows here, where its whole life averages it away
    opening_cpu: list[tuple[float, float]] = field(default_factory=list)

    def record_sent(self, sent_at: float) -> None:
        self.sent_ticks[int(sent_at * 10)] += 1

    def sent_between(self, start: float, end: float) -> int:
        """Purchase requests sent in [start, end) (to the 100 ms tick)."""
        first, last = int(start * 10), int(end * 10)
        return sum(n for tick, n in self.sent_ticks.items() if first <= tick < last)

    def sending_seconds(self) -> float:
        """From the first purchase request sent to the last (to the 100 ms tick, one at
        least), 0 when none was sent."""
        if not self.sent_ticks:
            return 0.0
        return (max(self.sent_ticks) - min(self.sent_ticks) + 1) / 10

    def busiest_second(self) -> int:
        """The most purchase requests sent in any one-second window."""
        ticks = self.sent_ticks
        return max((sum(ticks.get(t + i, 0) for i in range(10)) for t in ticks), default=0)

    def busiest_process_cpu(self) -> float:
        """The highest share of one core a locust process used over its life (0..1+)."""
        return max((cpu / wall for cpu, wall in self.processes if wall > 0), default=0.0)

    def busiest_opening_cpu(self) -> float | None:
        """The highest share of one core a locust process used in the opening second, or
        None when no process measured it (not a drop, or it never opened)."""
        shares = [cpu / wall for cpu, wall in self.opening_cpu if wall > 0]
        return max(shares) if shares else None

    def measure_opening(self, cpu_before: float, wall_before: float) -> None:
        """Record this process's CPU share since (``cpu_before``, ``wall_before``), taken
        from ``cpu_seconds()`` and ``time.monotonic()`` at the opening."""
        self.opening_cpu.append((cpu_seconds() - cpu_before, time.monotonic() - wall_before))

    def record_problem(self, text: str, limit: int = 200) -> None:
        if len(self.problems) < limit:
            self.problems.append(text)
        elif len(self.problems) == limit:
            self.problems.append("... more problems not recorded")

    def sample(self, kind: str, body: Any) -> None:
        """Keep the first problem detail answered for each kind of refusal."""
        if kind not in self.samples and len(self.samples) < 50 and isinstance(body, dict):
            self.samples[kind] = str(body.get("detail") or body.get("title") or body)[:200]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("refused", "errors", "requests", "payments", "cancels", "replays"):
            data[name] = dict(getattr(self, name))
        data["sent_ticks"] = {str(tick): n for tick, n in self.sent_ticks.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seen:
        seen = cls(
            attempts=int(data.get("attempts", 0)),
            bought=[Bought(**b) for b in data.get("bought", [])],
            sale_views=int(data.get("sale_views", 0)),
            problems=list(data.get("problems", [])),
            samples=dict(data.get("samples", {})),
            buyers=int(data.get("buyers", 0)),
            finished=int(data.get("finished", 0)),
            processes=[(float(c), float(w)) for c, w in data.get("processes", [])],
            opening_cpu=[(float(c), float(w)) for c, w in data.get("opening_cpu", [])],
        )
        for name in ("refused", "errors", "requests", "payments", "cancels", "replays"):
            getattr(seen, name).update(data.get(name, {}))
        seen.sent_ticks.update({int(t): n for t, n in data.get("sent_ticks", {}).items()})
        return seen

    def merge(self, other: Seen) -> None:
        self.attempts += other.attempts
        self.bought += other.bought
        for name in ("refused", "errors", "requests", "payments", "cancels", "replays"):
            getattr(self, name).update(getattr(other, name))
        self.sale_views += other.sale_views
        self.problems += other.problems
        self.samples = {**other.samples, **self.samples}
        self.buyers += other.buyers
        self.finished += other.finished
        self.sent_ticks.update(other.sent_ticks)
        self.processes += other.processes
        self.opening_cpu += other.opening_cpu

    def write(self, directory: Path) -> Path:
        """This process's records, with its own CPU and wall time since it started."""
        self.processes = [(cpu_seconds(), time.monotonic() - _STARTED)]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"seen-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        tmp.replace(path)
        return path

    @classmethod
    def load_dir(cls, directory: Path) -> Seen:
        seen = cls()
        for path in sorted(directory.glob("seen-*.json")):
            seen.merge(cls.from_json(json.loads(path.read_text())))
        return seen

    def orders(self) -> dict[str, Bought]:
        """Distinct orders by id: a replay is the same order, with the first sighting kept."""
        by_id: dict[str, Bought] = {}
        for b in sorted(self.bought, key=lambda b: b.received_at):
            first = by_id.setdefault(b.order_id, b)
            if first is not b:
                first.cancelled_at = first.cancelled_at or b.cancelled_at
                first.paid = first.paid or b.paid
        return by_id
