"""A short locust ``checkout`` against a real server process: carts across three drops of
two merchants, coins, parent and merchant bills paid through the simulator; verdict PASS.

The server is ``flashsale serve --with-workers`` (write-behind, timers, the simulator)
on the suite's Redis and PostgreSQL; the load test runs as the CLI does.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from .servers import delete_namespace, running_server, server_env

pytestmark = pytest.mark.slow


async def _admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_checkout_passes_with_clean_audits(
    redis_url: str, pg_admin_url: str, namespace: str, tmp_path: Path
) -> None:
    # a database of its own: the server's deliverer records its chain's genesis, and the
    # next test with a chain of its own (the demo) must not find this one's there
    name = f"fs_checkout_load_{namespace}"
    asyncio.run(_admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
    env = server_env(redis_url, f"{pg_admin_url.rpartition('/')[0]}/{name}", namespace)
    try:
        with running_server(env, tmp_path / "server.log") as url:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "flashsale.loadtest.cli",
                    "loadtest",
                    "checkout",
                    "--host",
                    url,
                    "--users",
                    "40",
                    "--spawn-rate",
                    "40",
                    "--serials",
                    "15",
                    "--run-time",
                    "20",
                    "--payment-timeout",
                    "5",
                    "--drain-timeout",
                    "30",
                    "--reports-dir",
                    str(tmp_path / "reports"),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=150,
            )
    finally:
        delete_namespace(redis_url, namespace)
        asyncio.run(_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "verdict: PASS", out[-4000:]
    assert "VIOLATION" not in done.stdout
    bought = next(line for line in lines if line.startswith("carts: "))
    assert " 0 bought whole" not in bought  # some carts were bought, and some refused
    assert "sold_out" in bought, bought
