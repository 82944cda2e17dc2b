"""A private PostgreSQL cluster for the demo, tests and fault tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

from flashsale.devservers.errors import EmbeddedServerError
from flashsale.devservers.pids import children, wait_dead
from flashsale.devservers.ports import HOST
from flashsale.devservers.process import ServerProcess, tail
from flashsale.devservers.reaping import release_pg_shm

_T = TypeVar("_T")


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


def _run_coroutine(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running loop."""

    async def main() -> _T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class EmbeddedPostgres(ServerProcess):
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
            backends = children(proc.pid)
            proc.kill()
            for child in backends:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            wait_dead(backends, 5.0)
        self._exited()

    def cleanup(self) -> None:
        if self._dir is not None:
            self._emergency_stop()
            release_pg_shm(self.data_dir)  # in case kill() was the last word
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
            raise EmbeddedServerError(f"initdb failed; log tail:\n{tail(log_path)}")
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
