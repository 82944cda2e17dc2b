"""A real ``flashsale serve --with-workers`` process for the load-test suite."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

SECRET = "loadtest-suite-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, f"server exited: {log.read_text()[-3000:]}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"server not healthy: {log.read_text()[-3000:]}"
                time.sleep(0.3)
            yield url
        finally:
            stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's session (started with start_new_session), SIGKILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def delete_namespace(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        batch = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(batch), 1000):
            client.unlink(*batch[i : i + 1000])
    finally:
        client.close()
