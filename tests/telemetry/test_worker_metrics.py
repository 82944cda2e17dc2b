"""``persist``, ``timers`` and ``deliver`` answer ``GET /metrics`` on a port of their own.

``persist`` and ``timers`` run as real processes against the suite's Redis and
PostgreSQL and are scraped over HTTP until their work shows; the deliverer's
series are read from its own counters (its process needs a chain: tests/chain).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flashsale.chain.deliverer import DeliverStats
from flashsale.devservers import free_port
from flashsale.engine.engine import Engine
from flashsale.payments.timers import TimerTotals
from flashsale.store import migrate
from flashsale.store.persist import PersistStats
from flashsale.telemetry.exporter import export
from flashsale.telemetry.workers import DELIVER, PERSIST, TIMERS, StatsCollector

from ..store.store_helpers import buy_many, make_sale

DEADLINE_S = 30.0


def values(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


@contextmanager
def process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "flashsale.cli.main", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def scrape_until(child: subprocess.Popen[str], port: int, name: str, at_least: float) -> str:
    """Scrape ``port`` until the series ``name`` reaches ``at_least`` (or fail)."""
    deadline = time.monotonic() + DEADLINE_S
    last = ""
    while time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read() if child.stderr else child.returncode
        try:
            last = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.TransportError:
            pass
        if values(last).get(name, 0) >= at_least:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached {at_least}: {last[-2000:]}")


def worker_env(redis_url: str, database_url: str, namespace: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return base | {
        "FLASHSALE_ENV": "dev",
        "FLASHSALE_DURABILITY": "fast",
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_NAMESPACE": namespace,
        **extra,
    }


async def test_persist_and_timers_serve_their_metrics(
    engine: Engine, redis_url: str, database_url: str, namespace: str
) -> None:
    await migrate.upgrade(database_url)
    sale_id = f"tm-{namespace}"
    await make_sale(engine, sale_id, size=20)
    assert len(await buy_many(engine, sale_id, [f"u{i}" for i in range(20)])) == 20
    persist_port, timers_port = free_port(), free_port()
    env = worker_env(
        redis_url,
        database_url,
        namespace,
        FLASHSALE_PERSIST_METRICS_PORT=str(persist_port),
        FLASHSALE_TIMERS_METRICS_PORT=str(timers_port),
    )
    with process("persist", env=env) as persist, process("timers", env=env) as timers:
        # the sale's creation and its 20 orders: 21 entries of its stream
        text = await asyncio.to_thread(
            scrape_until, persist, persist_port, "flashsale_persist_entries_total", 21
        )
        found = values(text)
        assert found["flashsale_persist_batches_total"] >= 1
        assert found["process_cpu_seconds_total"] > 0  # the process' own, too
        assert set(PERSIST.names()) <= set(found)
        text = await asyncio.to_thread(
            scrape_until, timers, timers_port, "flashsale_timers_ticks_total", 2
        )
        assert set(TIMERS.names()) <= set(values(text))


def test_a_busy_metrics_port_is_one_line_and_exit_2(
    redis_url: str, database_url: str, namespace: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = worker_env(
            redis_url, database_url, namespace, FLASHSALE_TIMERS_METRICS_PORT=str(port)
        )
        done = subprocess.run(
            [sys.executable, "-m", "flashsale.cli.main", "timers"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "FLASHSALE_TIMERS_METRICS_PORT" in lines[0], done.stderr


def test_deliver_series_read_the_deliverers_counters() -> None:
    stats = DeliverStats(submitted=3, confirmed=2, in_flight=1, chain_unreachable=1)
    other = DeliverStats(submitted=4)  # two watched objects: summed
    with DELIVER.watching(stats, other):
        registry = CollectorRegistry()
        registry.register(DELIVER)
        found = values(generate_latest(registry).decode())
    assert found["flashsale_deliver_submitted_total"] == 7
    assert found["flashsale_deliver_confirmed_total"] == 2
    assert found["flashsale_deliver_in_flight"] == 1
    assert found["flashsale_deliver_chain_unreachable"] == 1
    assert set(DELIVER.names()) <= set(found)
    # unwatched again: every series reads 0, none disappears
    after = values(generate_latest(registry).decode())
    assert after["flashsale_deliver_submitted_total"] == 0 and set(DELIVER.names()) <= set(after)


def test_every_series_reads_a_field_the_worker_keeps() -> None:
    kept: list[tuple[StatsCollector, type]] = [
        (PERSIST, PersistStats),
        (TIMERS, TimerTotals),
        (DELIVER, DeliverStats),
    ]
    for collector, stats in kept:
        fields = (
            set(stats.__struct_fields__)  # type: ignore[attr-defined]
            if hasattr(stats, "__struct_fields__")
            else {f.name for f in dataclasses.fields(stats)}
        )
        missing = [s.attribute for s in collector.series if s.attribute not in fields]
        assert missing == [], (stats.__name__, missing)


def test_the_exporter_is_off_without_a_port() -> None:
    assert export(None, "127.0.0.1", "FLASHSALE_PERSIST_METRICS_PORT", PERSIST) is None
    server = export(0, "127.0.0.1", "FLASHSALE_PERSIST_METRICS_PORT", StatsCollector([]))
    assert server is not None
    try:
        port = server.server_address[1]
        assert "process_cpu_seconds_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
