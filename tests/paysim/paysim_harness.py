"""A real simulator process and a tiny real callback receiver for the payment tests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashsale.devservers import ChildProcess, free_port
from flashsale.devservers.loopback_http import LoopbackHTTPServer, Request, Response

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


_SERVE = (
    "import sys, msgspec\n"
    "from flashsale.payments.paysim.app import PaysimConfig, serve\n"
    "serve('127.0.0.1', int(sys.argv[1]), msgspec.json.decode(sys.argv[2], type=PaysimConfig))\n"
)


class PaysimProcess(ChildProcess):
    """`serve()` in a subprocess on a free loopback port, with no FLASHSALE_* environment;
    `start()` (or ``with``) returns once its /health answers."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        super().__init__(
            [sys.executable, "-c", _SERVE, str(self.port), json.dumps(config)],
            env=env,
            log=log_path,
            ready_url=f"{self.url}/health",
            start_timeout_s=20,
            grace_s=10,
        )


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


class Receiver(LoopbackHTTPServer):
    """Records provider callbacks per path: `POST /cb/<key>` answers the statuses
    queued with `fail_first`, then 200."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: dict[str, list[Delivery]] = defaultdict(list)
        self._planned: dict[str, list[int]] = defaultdict(list)

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

    async def handle(self, request: Request) -> Response:
        key = request.target.removeprefix("/cb/")
        planned = self._planned[key]
        status = planned.pop(0) if planned else 200
        self.deliveries[key].append(
            Delivery(request.headers, request.body, time.monotonic(), status)
        )
        return Response(status, b"success")
