"""``bench/http.py`` (the ``handler`` part of ``flashsale bench``), bounded: one second per
phase on one server. Its figures are the bench's; here, that each is there and sane."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from flashsale.bench import http, peer
from flashsale.devservers import free_port
from flashsale.engine.keys import bench_peer_stock


def test_cpu_per_request_parsed_from_proc_and_wrk() -> None:
    out = "  12345 requests in 1.00s, 1.2MB read\nRequests/sec:  12345.00\n"
    assert http.wrk_requests(out) == 12345
    assert http.wrk_requests("nothing") == 0
    assert http.group_cpu_s(2**22 + 12345) == 0.0  # no such process group


def test_handler_part_reports_each_figure(redis_url: str) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (apt-get install -y wrk)")
    report = http.run(
        ["--duration", "1", "--warmup", "1", "--paced-connections", "100", "--redis-url", redis_url]
    )
    rows = [line for line in report.splitlines() if line.startswith("| granian |")]
    assert [row.split(" | ")[2] for row in rows] == [
        "bare POST (echo)",
        "purchase",
        http.PEER,
        "bare POST (echo), paced",
        "purchase, paced",
        f"{http.PEER}, paced",
    ], report
    for row in rows:
        cells = row.split(" | ")
        assert int(cells[4].replace(",", "")) > 0, row  # req/s
        assert cells[7] == "0", row  # errors: every purchase made an order
        cpu = float(cells[8])
        assert math.isfinite(cpu) and cpu > 0, row
    summary = re.search(r"granian: purchase ÷ bare POST \*\*([\d.]+)×\*\*", report)
    assert summary and float(summary.group(1)) > 0, report
    assert "CPU per request" in report and "paced connections" in report
    peer = re.search(r"granian: purchase ÷ the featureless peer .* \*\*([\d.]+)×\*\*", report)
    assert peer and float(peer.group(1)) > 0, report
    assert "--redis-url" not in report  # the command shown reproduces on a private Redis


def test_peer_sells_its_stock_once_then_refuses(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """The featureless peer (bench/peer.py) really is a purchase: one DECR per POST, a
    409 once the stock is gone, and the counter never below zero."""
    client = redis.Redis.from_url(redis_url)
    env = {**os.environ, "FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_NAMESPACE": namespace}
    port = free_port()
    try:
        asyncio.run(_seed(redis_url, namespace, 2))
        with peer.process(1, port, env, tmp_path / "peer.log"):
            url = f"http://127.0.0.1:{port}{peer.PURCHASE}"
            answers = [httpx.post(url, timeout=10) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 409]
        assert [a.json() for a in answers[:2]] == [{"left": 1}, {"left": 0}]
        assert client.get(bench_peer_stock(namespace)) == b"0"
    finally:
        client.delete(bench_peer_stock(namespace))
        client.close()


async def _seed(redis_url: str, namespace: str, units: int) -> None:
    client = AsyncRedis.from_url(redis_url)
    try:
        await peer.seed(client, namespace, units)
    finally:
        await client.aclose()
