"""Cost of ``flashsale audit`` on a big sale.

    python -m flashsale.bench.audit [--orders 1000000]

Fills a sale with N orders through the engine, drains them into a scratch
database with two consumers, then times the deep audit (every order compared,
in chunks) and the quick one (counters and server-side aggregates only), and
the peak memory of this process. FLASHSALE_REDIS_URL / FLASHSALE_DATABASE_URL
(admin URL) as for bench/drain.py; the namespace and database are removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import time

import asyncpg
from redis.asyncio import Redis

from flashsale.bench.drain import _drain, _fill
from flashsale.engine.engine import Engine
from flashsale.settings import Settings
from flashsale.store import migrate
from flashsale.store.audit import audit_sale


async def run(redis_url: str, admin_url: str, orders: int) -> None:
    db = f"flashsale_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{db}"')
    url = f"{admin_url.rpartition('/')[0]}/{db}"
    redis = Redis.from_url(redis_url)
    namespace = f"bench{secrets.token_hex(4)}"
    try:
        await migrate.upgrade(url)
        pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
        assert pool is not None
        sale_id = f"audit-{namespace}"
        t0 = time.perf_counter()
        bought = await _fill(Engine(redis, namespace=namespace), sale_id, orders)
        t1 = time.perf_counter()
        await _drain(redis, pool, namespace, sale_id, 2, 1000)
        t2 = time.perf_counter()
        print(f"filled {bought:,} orders in {t1 - t0:.1f}s, drained in {t2 - t1:.1f}s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for deep in (False, True):
            started = time.perf_counter()
            report = await audit_sale(redis, pool, namespace, sale_id, deep=deep)
            took = time.perf_counter() - started
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(
                f"| {bought:,} | {'deep' if deep else 'quick'} | {took:.2f} s | "
                f"ok={report.ok} persisted={report.persisted:,} lag={report.lag} | "
                f"peak RSS {rss / 1024:.0f} MiB (before audits {rss_before / 1024:.0f}) |",
                flush=True,
            )
        await pool.close()
    finally:
        keys: list[bytes] = []
        async for key in redis.scan_iter(match=f"{namespace}:*", count=5000):
            keys.append(key)
            if len(keys) >= 5000:
                await redis.unlink(*keys)
                keys.clear()
        if keys:
            await redis.unlink(*keys)
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = Settings.from_env()
    redis_url = settings.redis.url or "redis://127.0.0.1:6379/0"
    admin_url = settings.database.url or "postgresql://postgres@127.0.0.1:5432/postgres"
    asyncio.run(run(redis_url, admin_url, args.orders))


if __name__ == "__main__":
    main()
