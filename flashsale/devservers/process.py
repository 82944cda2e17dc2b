"""The base of every dev server: one child process in one directory of its own.

A subclass says how to launch the server (`_argv`), how to tell it is ready
(`_is_ready`) and how to stop it; the base starts it on a free loopback port
(another one if the port is taken before the bind), writes its pidfile, registers
it for `shutdown_all()`, asks the kernel to stop it when we die, and reports the
tail of its log when it fails."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from flashsale.devservers.errors import EmbeddedServerError, PortClashError
from flashsale.devservers.pids import pdeathsig_preexec
from flashsale.devservers.ports import free_port
from flashsale.devservers.reaping import (
    forget_live,
    new_owned_dir,
    register_live,
    remove_owned_dir,
    remove_pidfile,
    write_pidfile,
)

LOG_TAIL_LINES = 40


def tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log from byte `offset` on, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return "(no log)"
    text = data.decode(errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class Managed:
    """``with`` starts the server(s) and always removes them, even when start fails."""

    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()  # __exit__ will not run: leave no directory behind
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class OneProcess(Managed):
    """Something that runs as one child process (`_proc`, once started)."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The pid while it runs (the postmaster for PostgreSQL)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None


class ServerProcess(OneProcess):
    """One server process in one directory; subclasses say how to launch and probe."""

    _kind: ClassVar[str]
    _stale_signal: ClassVar[signal.Signals]  # quickest clean stop, for reaping/pdeathsig
    _default_timeout: ClassVar[float]
    _clash_markers: ClassVar[tuple[str, ...]] = ("Address already in use",)

    def __init__(self, port: int | None, workdir: Path | None, die_with_parent: bool) -> None:
        self._port = port
        self._port_fixed = port is not None
        self._dir: Path | None = Path(workdir).resolve() if workdir is not None else None
        self._owns_dir = workdir is None
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._started_once = False

    # -- hooks -----------------------------------------------------------------
    def start(self, timeout: float | None = None) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _argv(self, extra_args: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Runs before each launch, after the directory exists."""

    def _spawn_kwargs(self) -> dict[str, Any]:
        return {}

    @property
    def _log_path(self) -> Path:
        return self.dir / f"{self._kind}.log"

    @property
    def _cwd(self) -> Path:
        return self.dir

    # -- public ----------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedServerError(f"{self._kind} has no port before start()")
        return self._port

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise EmbeddedServerError(f"{self._kind} has no directory before start()")
        return self._dir

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self._log_path, 0, lines)

    def cleanup(self) -> None:
        """Stop the server and remove its directory (a given `workdir` is kept)."""
        self._emergency_stop()
        if self._owns_dir and self._dir is not None:
            remove_owned_dir(self._dir)
            self._dir = None

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections but answers nothing (a hang)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the directory stays for restart()."""
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._exited()

    # -- machinery -------------------------------------------------------------
    def _start(self, extra_args: Sequence[str], timeout: float | None) -> None:
        if self.running:
            return
        if self._dir is None:
            self._dir = new_owned_dir(self._kind)
        else:
            self._dir.mkdir(parents=True, exist_ok=True)
        # A port we picked may be taken before the server binds it: pick another.
        # A port in use before must stay (restart keeps clients' URLs valid): give
        # whatever holds it (an outgoing connection, a dying server) a moment.
        may_move = self._port is None and not self._port_fixed
        attempts = 5 if may_move else 3 if self._started_once else 1
        for attempt in range(attempts):
            if self._port is None or (may_move and attempt > 0):
                self._port = free_port()
            try:
                self._launch(extra_args, timeout or self._default_timeout)
                return
            except PortClashError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.0 if may_move else 0.5)

    def _launch(self, extra_args: Sequence[str], timeout: float) -> None:
        self._prepare()
        argv = self._argv(extra_args)
        log_path = self._log_path
        with log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                # Own process group: a terminal's Ctrl-C reaches only us, and we stop
                # the servers after the app, not while it is still draining.
                process_group=0,
                preexec_fn=(
                    pdeathsig_preexec(self._stale_signal) if self._die_with_parent else None
                ),
                **self._spawn_kwargs(),
            )
        self._proc = proc
        write_pidfile(self.dir, proc.pid, self._stale_signal)
        register_live(self)
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._exited()
                log_tail = tail(log_path, self._log_offset)
                kind = (
                    PortClashError
                    if any(m in log_tail for m in self._clash_markers)
                    else EmbeddedServerError
                )
                raise kind(f"{self._kind} exited with code {code} on start; log tail:\n{log_tail}")
            try:
                if self._is_ready(proc):
                    self._started_once = True
                    return
            except PortClashError:
                self.kill()
                raise
            if time.monotonic() > deadline:
                self.kill()
                log_tail = tail(log_path, self._log_offset)
                raise EmbeddedServerError(
                    f"{self._kind} not ready on port {self._port} after {timeout:.0f} s; "
                    f"log tail:\n{log_tail}"
                )
            time.sleep(0.01)

    def _signal_and_wait(self, sig: int, timeout: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                # Bounded: a signal handler running shutdown_all() may have interrupted
                # a wait() that holds Popen's waitpid lock; an unbounded wait deadlocks.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        self._exited()

    def _emergency_stop(self) -> None:
        self._signal_and_wait(self._stale_signal, 10.0)

    def _exited(self) -> None:
        if self._dir is not None:
            remove_pidfile(self._dir)
        forget_live(self)
