"""What the demo and the tests start when no service URL is given."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flashsale.devservers.cluster import EmbeddedRedisCluster
from flashsale.devservers.postgres import EmbeddedPostgres
from flashsale.devservers.redis import EmbeddedRedis


@contextlib.contextmanager
def embedded_stack(
    *,
    appendonly: bool = True,
    appendfsync: str = "always",
    database: str = "flashsale",
    cluster: bool = False,
) -> Iterator[tuple[str, str]]:
    """Start a private Redis (AOF on, as production should run), or with ``cluster`` a
    3-master Redis Cluster, and PostgreSQL with an empty `database`; yield
    ``(redis_url, database_url)`` (a cluster: its first node's URL); remove both on exit.

    For the demo when neither FLASHSALE_REDIS_URL nor FLASHSALE_DATABASE_URL is set.
    A long-running caller should also call `install_signal_handlers()`."""
    with contextlib.ExitStack() as stack:
        if cluster:
            aof = ("--appendonly", "yes" if appendonly else "no", "--appendfsync", appendfsync)
            redis_url = stack.enter_context(EmbeddedRedisCluster(nodes=3, extra_args=aof)).url
        else:
            server = EmbeddedRedis(appendonly=appendonly, appendfsync=appendfsync)
            redis_url = stack.enter_context(server).url
        postgres = stack.enter_context(EmbeddedPostgres())
        yield redis_url, postgres.create_database(database)
