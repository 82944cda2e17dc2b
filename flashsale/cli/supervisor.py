"""``flashsale serve --with-workers``: the API, the write-behind and the timers on one machine.

Each part runs as a process of its own (exactly the ``flashsale serve``,
``persist`` and ``timers`` a larger deployment runs separately), so a crash of
one never takes the others down: a child that exits is started again after a
back-off. When FLASHSALE_PAYSIM_URL is unset a payment simulator is started
too, and FLASHSALE_PUBLIC_URL defaults to the server's own address so that
provider callbacks find their way back. The deliverer (``flashsale deliver``)
runs against FLASHSALE_CHAIN_URL; unset, in dev mode, against a local chain
started here (``flashsale chain``, with its funded development key; outside dev
mode that key is refused, so delivery stays off until the URL and key are set).
The children inherit the supervisor's environment, so FLASHSALE_PERSIST_METRICS_PORT,
FLASHSALE_TIMERS_METRICS_PORT and FLASHSALE_DELIVER_METRICS_PORT set for it give
each worker its /metrics port (said when the worker starts).
Every child but the API runs at FLASHSALE_WORKERS_NICE (10 by default): on one
machine the write-behind, the timers and the rest are lag-tolerant, a buyer's answer is
not, so under contention the scheduler gives the cores to the API's workers first.
SIGTERM or SIGINT stops every child (SIGTERM, then SIGKILL after a grace
period) and the supervisor exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from flashsale import logs
from flashsale.devservers import free_port
from flashsale.settings import DEV_CHAIN_KEY, Settings

log = logging.getLogger("flashsale.supervisor")
GRACE_S = 20.0
MAX_BACKOFF_S = 10.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    note: str = ""  # said when it starts (where to reach it)
    nice: int = 0  # added to the supervisor's niceness (a background child's is positive)

    def start(self, env: dict[str, str]) -> None:
        # its own session: a terminal's Ctrl-C reaches the supervisor, which stops children in order
        self.process = subprocess.Popen(
            self.argv, env=env, start_new_session=True, preexec_fn=self._lower_priority
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)%s", self.name, self.process.pid, self.note)

    def _lower_priority(self) -> None:
        # in the child, before exec: the processes it starts (a chain node's) inherit it
        if self.nice:
            os.nice(self.nice)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flashsale.cli.main", *args]


def plan(
    settings: Settings, host: str, port: int, workers: int, server: str, env: dict[str, str]
) -> list[Child]:
    """The children to run; ``env`` (theirs) gets the simulator's and public URL when unset."""
    children: list[Child] = []
    if not settings.payments.paysim_url:
        paysim_port = free_port()
        env["FLASHSALE_PAYSIM_URL"] = f"http://127.0.0.1:{paysim_port}"
        note = (
            f" at {env['FLASHSALE_PAYSIM_URL']}: set FLASHSALE_PAYSIM_URL to it for "
            "`flashsale payments approve`"
        )
        children.append(Child("paysim", _cli("paysim", "--port", str(paysim_port)), note=note))
    if not settings.api.public_url:
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        env["FLASHSALE_PUBLIC_URL"] = f"http://{reachable}:{port}"
    children += _chain(settings, env)
    children += [
        Child(
            "api",
            _cli(
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--server",
                server,
            ),
        ),
        Child("persist", _cli("persist"), note=_metrics(settings, settings.metrics.persist_port)),
        Child("timers", _cli("timers"), note=_metrics(settings, settings.metrics.timers_port)),
    ]
    for child in children:
        if child.name != "api":
            child.nice = settings.server.workers_nice
    return children


def _metrics(settings: Settings, port: int | None) -> str:
    """Where a worker's /metrics answers (its FLASHSALE_*_METRICS_PORT), or nothing when off."""
    return f" with /metrics at http://{settings.metrics.host}:{port}/metrics" if port else ""


def _deliver(settings: Settings) -> Child:
    return Child("deliver", _cli("deliver"), note=_metrics(settings, settings.metrics.deliver_port))


def _chain(settings: Settings, env: dict[str, str]) -> list[Child]:
    """The deliverer, and a local chain for it when no chain is configured (dev mode)."""
    if settings.chain.url:
        return [_deliver(settings)]
    if settings.env != "dev":
        print("supervisor: delivery off (set FLASHSALE_CHAIN_URL and FLASHSALE_CHAIN_KEY)")
        return []
    chain_port = free_port()
    env["FLASHSALE_CHAIN_URL"] = f"http://127.0.0.1:{chain_port}"
    env.setdefault("FLASHSALE_CHAIN_KEY", DEV_CHAIN_KEY)
    # the deliverer waits (and retries) until the chain answers
    return [
        Child("chain", _cli("chain", "--port", str(chain_port))),
        _deliver(settings),
    ]


def supervise(settings: Settings, host: str, port: int, workers: int, server: str) -> int:
    logs.configure("supervisor", settings.log_format)
    env = dict(os.environ)  # the children read their settings from it, as this process did
    children = plan(settings, host, port, workers, server, env)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start(env)
    try:
        while not stopping:
            now = time.monotonic()
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                if child.next_start == 0.0:  # just exited: restart after a back-off
                    if now - child.started_at > 60:  # it had been running fine: start over
                        child.restarts = 0
                    delay = min(MAX_BACKOFF_S, 2.0**child.restarts)
                    child.restarts += 1
                    child.next_start = now + delay
                    log.warning("%s exited with %s, restarting in %.0f s", child.name, code, delay)
                elif now >= child.next_start:
                    child.next_start = 0.0
                    child.start(env)
            time.sleep(0.2)
    finally:
        # every child stops gracefully on SIGTERM: the write-behind finishes its batch
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                child.process.wait()
    return 0
