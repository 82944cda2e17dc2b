"""What the OS says about a process, and how to stop one that is not our child.

Linux reads /proc; macOS falls back to ``ps``. Also: asking the kernel to stop a
child when its parent dies (``PR_SET_PDEATHSIG``)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None without /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return raw.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
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


def proc_start_token(pid: int) -> str:
    """The process start time in clock ticks since boot (field 22), "" if unknown.

    With the pid it identifies a process even after its pid has been reused."""
    fields = _proc_stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else ""


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
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


def process_runs_in(pid: int, directory: Path) -> bool:
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


def wait_dead(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate_pid(pid: int, sig: int, timeout: float = 5.0) -> None:
    """Signal a process that is not our child, then SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
        os.kill(pid, signal.SIGCONT)  # a paused process only acts on signals once resumed
    if not wait_dead([pid], timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_dead([pid], 2.0)


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


def pdeathsig_preexec(sig: int) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to send `sig` to the child when we die.

    CPython runs preexec_fn after dropping privileges (user=...), which matters:
    changing uid would clear the setting again. Only from the main thread: the
    signal fires when the *thread* that forked exits, so None elsewhere."""
    prctl = _PRCTL
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # we died before prctl: nobody would signal now
            os._exit(1)

    return preexec
