"""The peer a team would otherwise build: the purchase in PostgreSQL alone.

One table of serials (one row each) and one of orders; a purchase is one
statement in one transaction (autocommit): take the first free serial with
``SELECT … FOR UPDATE SKIP LOCKED``, mark it, insert the order; a unique index
on (sale, buyer) is the per-user limit. Run: ``python -m flashsale.bench.pg_peer``.

It runs with the same number of concurrent clients as the other layers (one
asyncpg connection each, from one Python process), each buyer a fresh id so
every call takes the full path. Tables live in a schema of their own, dropped
afterwards. PostgreSQL keeps its settings (synchronous_commit on): durable at
COMMIT, which is what such a team would ship.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

import asyncpg

from flashsale.bench.common import Figure, machine_line
from flashsale.settings import Settings

PURCHASE = """
WITH s AS (
    SELECT serial FROM {schema}.serials
    WHERE sale_id = $1 AND order_id IS NULL
    ORDER BY serial
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE {schema}.serials p SET order_id = $2
    FROM s WHERE p.sale_id = $1 AND p.serial = s.serial
    RETURNING p.serial
)
INSERT INTO {schema}.orders (order_id, sale_id, buyer, serial, status)
SELECT $2, $1, $3, serial, 'pending_payment' FROM taken
RETURNING serial
"""


class PgPeer:
    """A schema with the peer's tables; ``purchase`` is the whole hot path."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.concurrency = concurrency
        self.schema = f"bench_pg_{secrets.token_hex(4)}"
        self.pool: asyncpg.Pool | None = None
        self.sql = PURCHASE.format(schema=self.schema)

    async def __aenter__(self) -> PgPeer:
        pool = await asyncpg.create_pool(
            self.url, min_size=self.concurrency, max_size=self.concurrency
        )
        assert pool is not None
        self.pool = pool
        s = self.schema
        await pool.execute(
            f"""
            CREATE SCHEMA {s};
            CREATE TABLE {s}.serials (
                sale_id text NOT NULL, serial bigint NOT NULL, order_id text,
                PRIMARY KEY (sale_id, serial));
            CREATE INDEX ON {s}.serials (sale_id, serial) WHERE order_id IS NULL;
            CREATE TABLE {s}.orders (
                order_id text PRIMARY KEY, sale_id text NOT NULL, buyer text NOT NULL,
                serial bigint NOT NULL, status text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (sale_id, buyer), UNIQUE (sale_id, serial));
            """
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.pool is not None
        try:
            await self.pool.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await self.pool.close()

    async def create_sale(self, sale_id: str, serials: int) -> None:
        assert self.pool is not None
        await self.pool.execute(
            f"INSERT INTO {self.schema}.serials (sale_id, serial) "
            "SELECT $1, g FROM generate_series(1, $2::bigint) g",
            sale_id,
            serials,
        )
        await self.pool.execute(f"ANALYZE {self.schema}.serials")

    async def rate(self, sale_id: str, requests: int) -> float:
        """Purchases per second with ``concurrency`` clients, every one a fresh buyer."""
        assert self.pool is not None
        pool, sql = self.pool, self.sql
        per_task = max(1, requests // self.concurrency)
        tag = time.perf_counter_ns()
        sold = 0

        async def client(task: int) -> None:
            nonlocal sold
            async with pool.acquire() as conn:
                stmt = await conn.prepare(sql)
                for i in range(per_task):
                    buyer = f"b{tag}-{task}-{i}"
                    if await stmt.fetchval(sale_id, f"{sale_id}.{buyer}", buyer) is not None:
                        sold += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(t) for t in range(self.concurrency)))
        seconds = time.perf_counter() - started
        if sold != per_task * self.concurrency:
            raise RuntimeError(f"peer sold {sold} of {per_task * self.concurrency}: undersized")
        return sold / seconds


async def run(url: str, runs: int, requests: int, concurrency: int) -> Figure:
    rates: list[float] = []
    async with PgPeer(url, concurrency) as peer:
        for i in range(runs):
            sale_id = f"peer-{i}"
            await peer.create_sale(sale_id, requests + concurrency)
            rates.append(await peer.rate(sale_id, requests))
    return Figure(tuple(rates))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--database-url",
        default=Settings.from_env().database.url or "postgresql://postgres@127.0.0.1/postgres",
    )
    args = parser.parse_args(argv)
    figure = asyncio.run(run(args.database_url, args.runs, args.requests, args.concurrency))
    print(
        f"PostgreSQL-only purchase (SKIP LOCKED), {args.concurrency} clients, "
        f"{machine_line()}: {figure.show(' purchases/s')}"
    )


if __name__ == "__main__":
    main()
