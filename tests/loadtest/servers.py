"""A real ``flashsale serve --with-workers`` process for the load-test suite."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import redis

from flashsale.devservers import ChildProcess, free_port

SECRET = "loadtest-suite-secret-0123456789abcdef"


def server_env(redis_url: str, database_url: str, namespace: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASHSALE_") or k.startswith("FLASHSALE_TEST_")
    }
    env |= {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_NAMESPACE": namespace,
        "FLASHSALE_JWT_SECRET": SECRET,
        "FLASHSALE_ENV": "dev",
        # the load generator is the proxy: the bots' X-Forwarded-For addresses count
        "FLASHSALE_TRUSTED_PROXIES": "127.0.0.1",
    }
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flashsale.cli.main", *args]


@contextlib.contextmanager
def running_server(env: dict[str, str], log: Path, *, workers: int = 1) -> Iterator[str]:
    """``db upgrade``, then ``serve --with-workers`` on a free port until healthy."""
    upgrade = subprocess.run(cli("db", "upgrade"), env=env, timeout=60, capture_output=True)
    assert upgrade.returncode == 0, f"flashsale db upgrade failed: {upgrade.stderr[-2000:]!r}"
    port = free_port()
    command = cli(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--with-workers",
    )
    url = f"http://127.0.0.1:{port}"
    with ChildProcess(command, env=env, log=log, ready_url=f"{url}/health"):
        yield url


@contextlib.contextmanager
def load_server(
    redis_url: str, database_url: str, namespace: str, log: Path
) -> Iterator[tuple[dict[str, str], str]]:
    """``running_server`` on a namespace deleted afterwards: its environment and URL."""
    env = server_env(redis_url, database_url, namespace)
    try:
        with running_server(env, log) as url:
            yield env, url
    finally:
        delete_namespace(redis_url, namespace)


def loadtest(
    env: dict[str, str],
    scenario: str,
    url: str,
    *flags: str,
    timeout: float = 100,
    **options: object,
) -> subprocess.CompletedProcess[str]:
    """``flashsale loadtest <scenario> --host <url> <flags> --<option> <value>...`` as the
    CLI runs it, in a process of its own (locust monkey-patches sockets)."""
    command = [sys.executable, "-m", "flashsale.loadtest.cli", "loadtest", scenario, "--host", url]
    command += flags
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def delete_namespace(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        batch = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(batch), 1000):
            client.unlink(*batch[i : i + 1000])
    finally:
        client.close()
