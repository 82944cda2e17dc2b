"""What the demo and the tests start when no service URL is given."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flashsale.devservers.postgres import EmbeddedPostgres
from flashsale.devservers.redis import EmbeddedRedis


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
