"""A real simulator process and a tiny real callback receiver for the payment tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

SECRET = "paysim-test-secret"
# Fast schedule: 5 attempts over 1 s, so retry and give-up tests stay short.
SCHEDULE_S = (0.0, 0.2, 0.2, 0.3, 0.3)
PAYSIM_CONFIG: dict[str, Any] = {
    "secret": SECRET,
    "seed": 20240601,
    "retry_schedule_s": list(SCHEDULE_S),
    "duplicate_after_s": 0.2,
    "callback_timeout_s": 2.0,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SERVE = (
    "import sys, msgspec\n"
    "from flashsale.payments.paysim.app import PaysimConfig, serve\n"
    "serve('127.0.0.1', int(sys.argv[1]), msgspec.json.decode(sys.argv[2], type=PaysimConfig))\n"
)


class PaysimProcess:
    """`serve()` in a subprocess on a free loopback port, with no FLASHSALE_* environment."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        self._log: IO[bytes] = log_path.open("wb")
        self._log_path = log_path
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.port), json.dumps(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_healthy(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"paysim exited early:\n{self.log()}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"paysim not healthy in {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self._log_path.read_text(errors="replace")

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    """Lower-cased names, as our server's framework would see them."""
    body: bytes
    at: float
    """time.monotonic() on arrival."""
    status: int
    """What the receiver answered."""

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """A minimal HTTP/1.1 server (keep-alive aware) recording callbacks per path.

    `POST /cb/<key>`: answers the statuses queued with `fail_first`, then 200.
    """

    def __init__(self) -> None:
        self.deliveries: dict[str, list[Delivery]] = defaultdict(list)
        self._planned: dict[str, list[int]] = defaultdict(list)
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def notify_url(self, key: str) -> str:
        return f"{self.url}/cb/{key}"

    def fail_first(self, key: str, *statuses: int) -> None:
        self._planned[key].extend(statuses)

    async def wait_for(self, key: str, count: int, timeout_s: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries[key]) < count:
            if time.monotonic() > deadline:
                got = len(self.deliveries[key])
                raise TimeoutError(f"{key}: {got} of {count} deliveries in {timeout_s} s")
            await asyncio.sleep(0.02)
        return list(self.deliveries[key])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                _method, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                key = target.removeprefix("/cb/")
                planned = self._planned[key]
                status = planned.pop(0) if planned else 200
                self.deliveries[key].append(Delivery(headers, body, time.monotonic(), status))
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: 7\r\n\r\nsuccess".encode()
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
