"""Which errors of the write-behind are worth retrying, and which refuse the rows themselves."""

from __future__ import annotations

import asyncpg
from redis.exceptions import ClusterError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# PostgreSQL is unreachable or restarting: retry the same batch later.
TRANSIENT_PG: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TooManyConnectionsError,
    # a pooled connection left mid-operation when the server went away ("cannot switch to
    # state 15; another operation is in progress", seen once after a PostgreSQL restart):
    # the connection is dropped (persist.py) and the batch retried on another
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
# A cluster adds its own: CLUSTERDOWN and MASTERDOWN while a replica takes over,
# TRYAGAIN during a slot's move, redirects past redis-py's limit (ClusterError), a
# slot no node serves yet or no node reachable to reload the map from
# (RedisClusterException): a failover, not a reason for the consumer to die.
TRANSIENT_REDIS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    TryAgainError,
    RedisClusterException,
)
# The rows themselves are refused: isolate the entry, retrying the batch will not help.
REFUSED = (asyncpg.exceptions.IntegrityConstraintViolationError, asyncpg.exceptions.DataError)
