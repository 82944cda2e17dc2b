"""One log format for every process: the API and its server, persist, timers, deliver, paysim,
the supervisor.

``configure(process, fmt)`` (``fmt`` is ``FLASHSALE_LOG_FORMAT``) sends every
log record of the process to stderr as one line:

- ``text``: ``2026-12-01T12:00:00.123Z INFO  api[4242] flashsale.access: GET /health 200
  0.41 ms request_id=9f2c...`` (fields given as ``extra={"fields": {...}}`` follow as
  ``key=value``, unless ``extra`` says ``"summarized": True``: the message says them);
- ``json``: one object per line, ``{"ts", "level", "process", "pid", "logger", "msg",
  "request_id"?, ...fields, "exc"?}``.

A record made while a request is being served carries its request id
(``REQUEST_ID``, set by the API's access log middleware, api/access.py), so
every line a request causes can be found with it. ``server_log_config`` gives
the ASGI servers (granian, uvicorn) a ``dictConfig`` with the same formatter,
so their own lines (start, stop, worker respawns) look the same; their access
logs stay off: the API writes its own.

The access log is the one line per request on the hot path, so it has a path
of its own (``access``): the same line, written without the ``logging``
machinery (no record, no caller lookup, no lock) and in batches (one write per
``ACCESS_BATCH`` lines or ``ACCESS_FLUSH_S`` seconds, ``flush_access`` at
exit). A process that never called ``configure`` (tests) sends access lines
through the ``flashsale.access`` logger instead.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import logging.config
import os
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import msgspec

from flashsale.settings import LogFormat

__all__ = [
    "ACCESS_FLUSH_S",
    "REQUEST_ID",
    "Formatter",
    "LogFormat",
    "access",
    "configure",
    "flush_access",
    "flush_access_every",
    "server_log_config",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("flashsale_request_id", default=None)
"""The id of the request being served in this context (None outside a request)."""

ACCESS_LOGGER = "flashsale.access"
ACCESS_BATCH = 64  # lines per write at most
ACCESS_FLUSH_S = 0.25  # the longest an access line waits to be written
# Loggers that say too much at INFO for a production log (one line per outgoing call).
QUIET = ("httpx", "httpcore", "asyncio")
_encode = msgspec.json.Encoder(enc_hook=str).encode


class _Clock:
    """ISO 8601 UTC timestamps with milliseconds; the seconds part is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def stamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int(created % 1 * 1000):03d}Z"


def render(
    *,
    json: bool,
    stamp: str,
    level: str,
    process: str,
    pid: int,
    logger: str,
    msg: str,
    request_id: str | None,
    fields: dict[str, Any] | None = None,
    summarized: bool = False,
    exc: str | None = None,
) -> str:
    """One line (plus a traceback in text) in the one format."""
    if json:
        line: dict[str, Any] = {
            "ts": stamp,
            "level": level.lower(),
            "process": process,
            "pid": pid,
            "logger": logger,
            "msg": msg,
        }
        if request_id:
            line["request_id"] = request_id
        if fields:
            line.update(fields)
        if exc:
            line["exc"] = exc
        return _encode(line).decode()
    text = f"{stamp} {level:<5} {process}[{pid}] {logger}: {msg}"
    if request_id:
        text += f" request_id={request_id}"
    if fields and not summarized:
        text += "".join(f" {key}={value}" for key, value in fields.items())
    if exc:
        text += "\n" + exc
    return text


class Formatter(logging.Formatter):
    """The one format (see the module docstring); ``json`` picks the JSON lines."""

    def __init__(self, process: str = "flashsale", json: bool = False) -> None:
        super().__init__()
        self.process = process
        self.json = json
        self.pid = os.getpid()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        return render(
            json=self.json,
            stamp=self._clock.stamp(record.created),
            level=record.levelname,
            process=self.process,
            pid=self.pid,
            logger=record.name,
            msg=record.getMessage(),
            request_id=getattr(record, "request_id", None) or REQUEST_ID.get(),
            fields=getattr(record, "fields", None),
            summarized=getattr(record, "summarized", False),
            exc=self.formatException(record.exc_info) if record.exc_info else record.exc_text,
        )


class _AccessWriter:
    """Access lines in the one format (the same as ``render`` makes: a test compares),
    built directly (the hot path) and written in batches to ``stream``."""

    def __init__(self, process: str, json: bool, stream: TextIO) -> None:
        self.process, self.json, self.stream = process, json, stream
        self.pid = os.getpid()
        self._head = f" INFO  {process}[{self.pid}] {ACCESS_LOGGER}: "
        self._clock = _Clock()
        self._lines: list[str] = []
        self._oldest = 0.0

    def write(
        self, method: str, path: str, status: int, elapsed_ms: float, request_id: str
    ) -> None:
        now = time.time()
        stamp = self._clock.stamp(now)
        msg = f"{method} {path} {status} {elapsed_ms:.2f} ms"
        if self.json:
            line = _encode(
                {
                    "ts": stamp,
                    "level": "info",
                    "process": self.process,
                    "pid": self.pid,
                    "logger": ACCESS_LOGGER,
                    "msg": msg,
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed_ms, 3),
                }
            ).decode()
        else:
            line = f"{stamp}{self._head}{msg} request_id={request_id}"
        if not self._lines:
            self._oldest = now
        self._lines.append(line)
        if len(self._lines) >= ACCESS_BATCH or now - self._oldest >= ACCESS_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


_writer: _AccessWriter | None = None


def access(method: str, path: str, status: int, elapsed_ms: float, request_id: str) -> None:
    """One access line: method, path, status, duration and request id (api/access.py)."""
    writer = _writer
    if writer is not None:
        writer.write(method, path, status, elapsed_ms, request_id)
        return
    fields = {"method": method, "path": path, "status": status, "duration_ms": round(elapsed_ms, 3)}
    logging.getLogger(ACCESS_LOGGER).info(
        f"{method} {path} {status} {elapsed_ms:.2f} ms",
        extra={"fields": fields, "summarized": True, "request_id": request_id},
    )


def flush_access() -> None:
    """Write the access lines waiting in the batch (a timer and the exit call it)."""
    if _writer is not None:
        _writer.flush()


async def flush_access_every(interval_s: float = ACCESS_FLUSH_S) -> None:
    """Write waiting access lines at least this often, also when no request comes."""
    while True:
        await asyncio.sleep(interval_s)
        flush_access()


def configure(process: str, fmt: LogFormat = "text", level: int = logging.INFO) -> None:
    """Every record of this process to stderr in the one format (replaces other handlers)."""
    global _writer
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter(process, json=fmt == "json"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if _writer is None:
        atexit.register(flush_access)
    _writer = _AccessWriter(process, fmt == "json", sys.stderr)


def server_log_config(process: str, fmt: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for granian and uvicorn: their loggers through the one
    formatter on stderr (granian's ``log_dictconfig``, uvicorn's ``log_config``)."""
    through = {"handlers": ["stderr"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "flashsale": {"()": f"{__name__}.Formatter", "process": process, "json": fmt == "json"}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "flashsale",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: through
            for name in ("_granian", "granian", "granian.access", "uvicorn", "uvicorn.error")
        }
        | {"uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
    }
