"""Drain rate of the write-behind against a plain COPY of the same rows, same run.

    python -m flashsale.bench.drain [--orders 100000] [--consumers 1 2] [--batch 1000]

Uses FLASHSALE_REDIS_URL and FLASHSALE_DATABASE_URL (an admin URL: a scratch
database is created and dropped; a private key namespace is used and deleted).
For each consumer count: N orders are bought through the engine (the consumer
is not running), then the consumers drain the sale's stream into PostgreSQL
(orders + order_events); the time from start to "stream fully acknowledged" gives
orders/s. The same rows are then deleted and loaded again with COPY
(``copy_records_to_table``) into the same tables with the same indexes: the
ratio drain / COPY is the figure of merit. Prints one Markdown row per run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec
from flashsale.errors import FlashsaleError
from flashsale.settings import Settings
from flashsale.store import migrate
from flashsale.store.lag import stream_lag
from flashsale.store.persist import PersistConfig, Persister

HEADER = (
    "| orders | consumers | batch | drain (orders/s) | COPY (orders/s) | drain / COPY |\n"
    "|---:|---:|---:|---:|---:|---:|"
)


async def _fill(engine: Engine, sale_id: str, orders: int) -> int:
    await engine.create_sale(
        SaleCreate(
            sale_id=sale_id,
            name="drain bench",
            serials=SerialsSpec(range=(1, orders)),
            start_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    )
    done = 0
    for start in range(0, orders, 5000):
        results = await asyncio.gather(
            *(engine.purchase(sale_id, f"u{i}") for i in range(start, min(orders, start + 5000))),
            return_exceptions=True,
        )
        done += sum(1 for r in results if not isinstance(r, FlashsaleError | BaseException))
    return done


async def _drain(
    redis: Redis, pool: asyncpg.Pool, namespace: str, sale_id: str, consumers: int, batch: int
) -> float:
    config = PersistConfig(batch_size=batch, idle_sleep_s=0.005)
    workers = [
        Persister(redis, pool, namespace=namespace, config=config, sales=[sale_id])
        for _ in range(consumers)
    ]
    stop = asyncio.Event()
    started = time.perf_counter()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    while (await stream_lag(redis, namespace, sale_id)).entries:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*tasks)
    return elapsed


async def _copy(pool: asyncpg.Pool, sale_id: str) -> tuple[int, float]:
    async with pool.acquire() as conn:
        orders = await conn.fetch("SELECT * FROM orders WHERE sale_id = $1", sale_id)
        ids = [r["order_id"] for r in orders]
        events = await conn.fetch(
            "SELECT * FROM order_events WHERE order_id = ANY($1::text[])", ids
        )
        await conn.execute("DELETE FROM order_events WHERE order_id = ANY($1::text[])", ids)
        await conn.execute("DELETE FROM orders WHERE sale_id = $1", sale_id)
        await conn.execute("VACUUM orders, order_events")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "orders", records=[tuple(r) for r in orders], columns=list(orders[0].keys())
            )
            await conn.copy_records_to_table(
                "order_events", records=[tuple(r) for r in events], columns=list(events[0].keys())
            )
        return len(orders), time.perf_counter() - started


async def run(
    redis_url: str, admin_url: str, orders: int, consumers: list[int], batch: int
) -> None:
    db = f"flashsale_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{db}"')
    url = f"{admin_url.rpartition('/')[0]}/{db}"
    redis = Redis.from_url(redis_url)
    rows = [HEADER]
    try:
        await migrate.upgrade(url)
        pool = await asyncpg.create_pool(url, min_size=2, max_size=max(consumers) + 2)
        assert pool is not None
        for count in consumers:
            namespace = f"bench{secrets.token_hex(4)}"
            engine = Engine(redis, namespace=namespace)
            sale_id = f"drain-{namespace}"
            bought = await _fill(engine, sale_id, orders)
            drain_s = await _drain(redis, pool, namespace, sale_id, count, batch)
            copied, copy_s = await _copy(pool, sale_id)
            assert copied == bought, (copied, bought)
            drain_rate, copy_rate = bought / drain_s, copied / copy_s
            rows.append(
                f"| {bought:,} | {count} | {batch} | {drain_rate:,.0f} | {copy_rate:,.0f} "
                f"| {drain_rate / copy_rate:.2f} |"
            )
            print(rows[-1], flush=True)
            keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
            if keys:
                await redis.unlink(*keys)
        await pool.close()
    finally:
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings.from_env()
    redis_url = settings.redis.url or "redis://127.0.0.1:6379/0"
    admin_url = settings.database.url or "postgresql://postgres@127.0.0.1:5432/postgres"
    asyncio.run(run(redis_url, admin_url, args.orders, args.consumers, args.batch))


if __name__ == "__main__":
    main()
