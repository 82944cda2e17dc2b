"""Logs: one format in every process (text or JSON), an access line per request, and the
request id on every line a request causes and in its answer."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale import logs
from flashsale.devservers import ChildProcess, free_port
from flashsale.store import migrate

from .conftest import bearer


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("flashsale.test", logging.WARNING, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_one_line_in_text_and_in_json_with_the_request_id() -> None:
    token = logs.REQUEST_ID.set("req-42")
    try:
        text = logs.Formatter("timers").format(_record("late", fields={"order_id": "o.1"}))
        line = json.loads(logs.Formatter("timers", json=True).format(_record("late")))
    finally:
        logs.REQUEST_ID.reset(token)
    assert text.endswith(
        f"WARNING timers[{os.getpid()}] flashsale.test: late request_id=req-42 order_id=o.1"
    )
    assert text[:4].isdigit() and text[23] == "Z"  # 2026-12-01T12:00:00.123Z
    assert line["level"] == "warning" and line["process"] == "timers"
    assert (line["logger"], line["msg"], line["request_id"]) == ("flashsale.test", "late", "req-42")
    plain = logs.Formatter("persist").format(_record("idle"))
    assert "request_id" not in plain, "no request, no id"


def test_an_exception_stays_on_its_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = json.loads(logs.Formatter("api", json=True).format(record))
    assert "ValueError: boom" in line["exc"]


def test_access_lines_are_batched_in_the_one_format(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    writer = logs._AccessWriter("api", json=True, stream=stream)
    monkeypatch.setattr(logs, "_writer", writer)
    logs.access("POST", "/v1/sales/s/purchase", 201, 0.5, "r-1")
    assert stream.getvalue() == "", "waits for the batch"
    logs.flush_access()
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert {k: line[k] for k in ("method", "path", "status", "duration_ms", "request_id")} == {
        "method": "POST",
        "path": "/v1/sales/s/purchase",
        "status": 201,
        "duration_ms": 0.5,
        "request_id": "r-1",
    }


@pytest.mark.parametrize("json_lines", [False, True])
def test_the_fast_access_line_is_the_one_format(
    json_lines: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access path skips `logging` for speed; its line is what the Formatter makes."""
    stream = io.StringIO()
    monkeypatch.setattr(logs, "_writer", logs._AccessWriter("api", json_lines, stream))
    logs.access("GET", "/health", 200, 1.25, "r-9")
    logs.flush_access()
    fast = stream.getvalue().rstrip("\n")
    record = _record(
        "GET /health 200 1.25 ms",
        fields={"method": "GET", "path": "/health", "status": 200, "duration_ms": 1.25},
        summarized=True,
        request_id="r-9",
    )
    record.name, record.levelname = "flashsale.access", "INFO"
    slow = logs.Formatter("api", json=json_lines).format(record)
    if json_lines:
        assert {**json.loads(fast), "ts": 0} == {**json.loads(slow), "ts": 0}
    else:
        assert fast.split(" ", 1)[1] == slow.split(" ", 1)[1]


async def test_each_request_has_an_access_line_and_an_id(
    client: AsyncTestClient[Litestar],
    make_sale: object,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "_writer", None)  # through the logger, where caplog sees it
    caplog.set_level(logging.INFO, logger="flashsale.access")
    given = await client.get("/health", headers={"X-Request-Id": "trace-abc.1"})
    assert given.headers["x-request-id"] == "trace-abc.1"
    fresh = await client.post("/v1/sales/nope/purchase", json={}, headers=bearer("u1"))
    insane = await client.get("/nowhere", headers={"X-Request-Id": "bad id\twith spaces"})
    assert insane.status_code == 404
    ids = [fresh.headers["x-request-id"], insane.headers["x-request-id"]]
    # a fresh id replaces the unsafe one (not "bad" not in: a random hex id may hold b, a, d)
    assert all(ids) and len(set(ids)) == 2 and " " not in ids[1] and "with" not in ids[1]
    lines = [r for r in caplog.records if r.name == "flashsale.access"]
    seen = [(r.fields["method"], r.fields["path"], r.fields["status"], r.request_id) for r in lines]  # type: ignore[attr-defined]
    assert seen == [
        ("GET", "/health", 200, "trace-abc.1"),
        ("POST", "/v1/sales/nope/purchase", 404, ids[0]),
        ("GET", "/nowhere", 404, ids[1]),
    ]
    assert all(r.fields["duration_ms"] >= 0 for r in lines)  # type: ignore[attr-defined]


def _scrape(url: str, timeout_s: float = 30.0) -> str:
    """The text at ``url`` once it answers (a worker binds its port after it starts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = httpx.get(url, timeout=5)
            answer.raise_for_status()
            return answer.text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # polling a port that is not bound yet: no event to await


def test_every_process_logs_json_lines(
    redis_url: str, own_database_url: str, namespace: str, tmp_path: Path
) -> None:
    """`serve --with-workers` runs the supervisor, the API (granian and its workers),
    persist, timers and a simulator: with FLASHSALE_LOG_FORMAT=json every line is JSON.
    The workers' FLASHSALE_*_METRICS_PORT set for the supervisor give each its /metrics
    (one start of the supervisor for both: it is the slow part). A database of its own:
    the deliverer records its local chain's genesis there."""
    database_url = own_database_url
    asyncio.run(migrate.upgrade(database_url))
    port = free_port()
    metrics = {worker: free_port() for worker in ("persist", "timers", "deliver")}
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        | {
            "FLASHSALE_ENV": "dev",
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_DATABASE_URL": database_url,
            "FLASHSALE_NAMESPACE": namespace,
            "FLASHSALE_LOG_FORMAT": "json",
            "FLASHSALE_DURABILITY": "fast",
        }
        | {f"FLASHSALE_{w.upper()}_METRICS_PORT": str(p) for w, p in metrics.items()}
    )
    log = tmp_path / "serve.log"
    server = ChildProcess(
        [
            sys.executable,
            "-m",
            "flashsale.cli.main",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
            "--with-workers",
        ],
        env=env,
        log=log,
        ready_url=f"http://127.0.0.1:{port}/health",
        start_timeout_s=90,
    )
    server.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/health", headers={"X-Request-Id": "json-1"})
        assert answer.headers["x-request-id"] == "json-1"
        for worker, metrics_port in metrics.items():
            scraped = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            assert f"flashsale_{worker}_" in scraped, (worker, scraped[:400])
        # the API at the supervisor's priority, the lag-tolerant rest below it
        pids = dict(re.findall(r"started (\w+) \(pid (\d+)\)", log.read_text()))
        base = os.getpriority(os.PRIO_PROCESS, 0)
        niceness = {name: os.getpriority(os.PRIO_PROCESS, int(pid)) for name, pid in pids.items()}
        assert niceness["api"] == base, niceness
        for worker in ("persist", "timers", "deliver", "paysim"):
            assert niceness[worker] == min(19, base + 10), niceness
    finally:
        server.stop()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n" + "\n".join(lines[-40:]))
    # the local chain announces itself with one JSON object on stdout (`flashsale chain`)
    records = [p for p in parsed if "rpc_url" not in p]
    assert all({"ts", "level", "process", "msg"} <= set(p) for p in records), records
    processes = {p["process"] for p in records}
    assert {"supervisor", "api", "persist", "timers", "paysim"} <= processes
    said = " ".join(p["msg"] for p in records if p["process"] == "supervisor")
    for worker, metrics_port in metrics.items():  # the supervisor says where to scrape
        assert f"started {worker} (pid" in said
        assert f"/metrics at http://127.0.0.1:{metrics_port}/metrics" in said
    [access] = [p for p in parsed if p.get("request_id") == "json-1"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/health", 200)
