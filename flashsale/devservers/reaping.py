"""Leaving nothing behind: owned directories, pidfiles, the registry of live servers,
and the reaping of what a killed run left.

Every server gets its own directory under ``<tmp>/flashsale-embedded/``, named
``<kind>-<owner pid>-<random>`` and holding an owner file and a pidfile, so that a
later run can tell whose it is: `reap_stale()` (called before every new directory)
stops the servers of dead owners and removes their directories. `shutdown_all()`
runs at exit and, with `install_signal_handlers()`, on SIGTERM and SIGINT."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from flashsale.devservers.errors import EmbeddedServerError
from flashsale.devservers.pids import (
    pid_alive,
    pid_namespace,
    proc_start_token,
    process_runs_in,
    terminate_pid,
)

_BASE_NAME = "flashsale-embedded"
_OWNER_FILE = ".owner.json"
_PIDFILE = "server.pid"  # our own record of a server's pid, whatever the server writes


class Stoppable(Protocol):
    def _emergency_stop(self) -> None:
        """Stop at once, whatever state the server is in."""


_REGISTRY_LOCK = threading.RLock()
_LIVE: set[Stoppable] = set()
_OWNED_DIRS: set[Path] = set()


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


def new_owned_dir(kind: str) -> Path:
    """A fresh directory for a server of `kind`, owned by this process (reaps first)."""
    reap_stale()
    path = Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=base_dir()))
    owner = {"pid": os.getpid(), "start": proc_start_token(os.getpid()), "pidns": pid_namespace()}
    (path / _OWNER_FILE).write_text(json.dumps(owner))
    with _REGISTRY_LOCK:
        _OWNED_DIRS.add(path)
    return path


def remove_owned_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _REGISTRY_LOCK:
        _OWNED_DIRS.discard(path)


def _owner_is_dead(path: Path) -> bool:
    """Whether the process that created `path` is gone (pid reuse included)."""
    pid = int(path.name.split("-")[1])
    try:
        owner = json.loads((path / _OWNER_FILE).read_text())
    except (OSError, ValueError):
        # Owner file not written yet (or lost): trust the name, but never a fresh dir.
        return time.time() - path.stat().st_mtime > 60 and not pid_alive(pid)
    if owner.get("pidns") and owner["pidns"] != pid_namespace():
        return False  # another pid namespace (container sharing /tmp): cannot tell
    pid = int(owner["pid"])
    if not pid_alive(pid):
        return True
    start = str(owner.get("start", ""))
    return bool(start) and proc_start_token(pid) not in ("", start)


# --------------------------------------------------------------------------- pidfiles


def write_pidfile(directory: Path, pid: int, stop_signal: signal.Signals) -> None:
    """Record a server's pid and the signal that stops it quickly, for reap_stale()."""
    (directory / _PIDFILE).write_text(f"{pid} {stop_signal.name}\n")


def remove_pidfile(directory: Path) -> None:
    with contextlib.suppress(OSError):
        (directory / _PIDFILE).unlink()


def _read_pidfile(path: Path) -> tuple[int, int] | None:
    try:
        pid_s, sig_name = path.read_text().split()
        return int(pid_s), int(signal.Signals[sig_name])
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------- reaping


def release_pg_shm(data_dir: Path) -> None:
    """Remove the System V shared memory segment of a SIGKILLed postmaster.

    A postmaster that dies by SIGKILL leaves its segment behind; a restart in the
    same data dir would reuse it, but one that is never restarted leaks a kernel
    slot (shmmni, shared with the system PostgreSQL) per crash test. It lives here,
    not with PostgreSQL, because it is the one thing reaping must free outside a
    directory."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        key_s, shmid_s = lines[6].split()
        key, shmid = ctypes.c_int(int(key_s)).value, int(shmid_s)
    except (OSError, ValueError, IndexError):
        return
    if pid_alive(pid) and process_runs_in(pid, data_dir):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    # Only the segment still registered under this data dir's key: ids get reused.
    if shmid >= 0 and libc.shmget(key, 0, 0) == shmid:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


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
            if record is not None and pid_alive(record[0]):
                if process_runs_in(record[0], pidfile.parent):
                    terminate_pid(*record)
        release_pg_shm(path / "data")
        shutil.rmtree(path, ignore_errors=True)  # another user's dir may resist: skip it
        if not path.exists():
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- registry


def register_live(server: Stoppable) -> None:
    with _REGISTRY_LOCK:
        _LIVE.add(server)


def forget_live(server: Stoppable) -> None:
    with _REGISTRY_LOCK:
        _LIVE.discard(server)


def shutdown_all() -> None:
    """Stop every embedded server this process started and remove their directories."""
    with _REGISTRY_LOCK:
        live = list(_LIVE)
        owned = list(_OWNED_DIRS)
    for server in live:
        with contextlib.suppress(Exception):
            server._emergency_stop()
    for path in owned:
        release_pg_shm(path / "data")
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
