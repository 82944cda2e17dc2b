"""Private Redis and PostgreSQL servers for the fault tests (killed, stopped, cut).

The project's embedded servers (``flashsale.devservers``): loopback only,
a free port and a directory each, start / stop / kill -9 / restart on the same
port and directory, and the AOF files in load order (base first, then incr).
"""

from __future__ import annotations

from flashsale.devservers import EmbeddedPostgres as PrivatePostgres
from flashsale.devservers import EmbeddedRedis as PrivateRedis

__all__ = ["PrivatePostgres", "PrivateRedis"]
