"""Private, throw-away servers for the demo, tests and fault tests.

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

The modules, bottom up: `ports` (the one `free_port()`), `pids` (what the OS says
about a process), `reaping` (owned directories, pidfiles, cleanup at exit and on
the next start), `process` (the `ServerProcess` base: start, probe, stop, kill),
then one module per server: `redis`, `postgres`, `cluster`, and `stack`
(`embedded_stack()`). Beside them, for the project's own processes and for tests:
`child` (`ChildProcess`: start a command, wait until its URL answers, stop it) and
`loopback_http` (a tiny in-process HTTP server that plays the other side).

This package sits beside the engine at the bottom: it imports no other flashsale
package, and the engine does not import it.

POSIX only (Linux and macOS).
"""

from flashsale.devservers.child import ChildProcess
from flashsale.devservers.cluster import EmbeddedRedisCluster
from flashsale.devservers.errors import EmbeddedServerError
from flashsale.devservers.ports import HOST, free_port
from flashsale.devservers.postgres import EmbeddedPostgres, find_postgres_bindir
from flashsale.devservers.reaping import base_dir, install_signal_handlers, reap_stale, shutdown_all
from flashsale.devservers.redis import EmbeddedRedis, find_redis_server
from flashsale.devservers.stack import embedded_stack

__all__ = [
    "HOST",
    "ChildProcess",
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
