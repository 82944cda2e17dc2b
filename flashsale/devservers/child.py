"""One of our own commands as a child process: start it, wait until a URL answers, stop it.

For the processes the demo, the benches and the tests start from the project
itself (``flashsale serve``, the payment simulator). Unlike a `ServerProcess` it
gets no directory of its own (the caller chooses its log, or lets it print), and it
runs in a session of its own so that the stop signal reaches its whole process
group: a server's workers as well as the server."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

from flashsale.devservers.errors import EmbeddedServerError
from flashsale.devservers.process import LOG_TAIL_LINES, OneProcess, tail


class ChildProcess(OneProcess):
    """`argv` run with `env` (ours when None), its output appended to `log` (or shown).

    `start()` returns once a GET of `ready_url` answers 200, or raises with the log
    tail when the process exits first or `start_timeout_s` passes. `stop()` sends
    `stop_signal` to the process group, waits `grace_s`, then SIGKILLs the group."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        ready_url: str | None = None,
        start_timeout_s: float = 60.0,
        stop_signal: signal.Signals = signal.SIGTERM,
        grace_s: float = 20.0,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.log = log
        self.ready_url = ready_url
        self.start_timeout_s = start_timeout_s
        self.stop_signal = stop_signal
        self.grace_s = grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    def start(self) -> None:
        if self.running:
            return
        if self.log is not None:
            self._log_file = self.log.open("ab")
            self._log_offset = self._log_file.tell()
        self._proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT if self._log_file is not None else None,
            start_new_session=True,
        )
        if self.ready_url is not None:
            try:
                self._wait_ready(self.ready_url)
            except BaseException:
                self.stop()
                raise

    def _wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    raise EmbeddedServerError(
                        f"{self._name} exited with code {code} on start:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"{url} did not answer 200 within {self.start_timeout_s:.0f} s:\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(0.05)

    @property
    def _name(self) -> str:
        command = shlex.join(self.argv)
        return command if len(command) <= 120 else command[:117] + "..."

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal)
            try:
                proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        self.stop()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log is None:
            return "(output not captured)"
        if self._log_file is not None:
            self._log_file.flush()
        return tail(self.log, self._log_offset, lines)
