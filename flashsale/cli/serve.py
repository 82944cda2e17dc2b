"""``flashsale serve``: the API workers under uvicorn (default) or granian.

Measured on this 2-core machine (bench/http.py, 2 workers, same run; bench/servers.py,
granian's knobs against uvicorn), see the README's bench table and docs/design.md
("Decisions"): uvicorn is the default (FLASHSALE_SERVER), ``--server granian`` the other;
granian's runtime mode, Rust threads and backpressure are FLASHSALE_GRANIAN_* settings.
Prometheus multiprocess mode needs a directory shared by the workers, emptied
before they start: ``serve`` makes a fresh temporary one (unless
PROMETHEUS_MULTIPROC_DIR is already set) before any worker exists.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from flashsale.logs import LogFormat, server_log_config
from flashsale.settings import ServerSettings

APP_FACTORY = "flashsale.api.app:served_app"  # create_app with the process's logging
BACKLOG = 16384  # thousands of buyers connecting in the same second must not overflow it
# FLASHSALE_GRANIAN_BACKPRESSURE defaults to 16,384 (settings.py): granian's own default is
# backlog / workers requests per worker; past it, a connection is accepted and never
# answered (a 5,000-user drop timed out 904 buyers)


class Server(StrEnum):
    granian = "granian"
    uvicorn = "uvicorn"


@contextmanager
def multiprocess_metrics_dir() -> Iterator[str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run's workers (inherited through the env)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):  # stale files of a previous run would be summed in
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        yield given
        return
    path = tempfile.mkdtemp(prefix="flashsale-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_server(
    server: Server,
    host: str,
    port: int,
    workers: int,
    log_format: LogFormat = "text",
    knobs: ServerSettings | None = None,
) -> None:
    """Serve the API in the foreground until interrupted (blocks); granian with the
    ``knobs`` of FLASHSALE_GRANIAN_* (settings.ServerSettings)."""
    knobs = knobs or ServerSettings()
    with multiprocess_metrics_dir():
        # prometheus_client picks its value store when first imported; the CLI may
        # have imported it already, and forked workers would inherit per-process
        # counters that no scrape sums up: pick again now that the directory is set
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        if server is Server.granian:
            from granian import Granian
            from granian.constants import Interfaces, Loops, RuntimeModes

            Granian(
                APP_FACTORY,
                address=host,
                port=port,
                interface=Interfaces.ASGI,
                workers=workers,
                factory=True,
                websockets=False,
                loop=Loops.uvloop,
                runtime_mode=RuntimeModes(knobs.granian_runtime_mode),
                runtime_threads=knobs.granian_runtime_threads,
                backlog=BACKLOG,
                backpressure=knobs.granian_backpressure,
                log_access=False,  # the API writes its own access log (api/access.py)
                log_dictconfig=server_log_config("api", log_format),
                respawn_failed_workers=True,
            ).serve()
        else:
            import uvicorn

            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                loop="uvloop",
                http="httptools",
                lifespan="on",
                access_log=False,  # the API writes its own access log (api/access.py)
                log_config=server_log_config("api", log_format),
                backlog=BACKLOG,
                log_level="warning",
                # the app resolves X-Forwarded-For itself (FLASHSALE_TRUSTED_PROXIES,
                # api/clientip.py); uvicorn's own rewrite would trust it from loopback
                proxy_headers=False,
            )
