"""The checkout's cost against single purchases, per serial, in the same run.

    python -m flashsale.bench.checkout [--buyers 400] [--items 1 2 3] [--concurrency 32]
    flashsale bench --only checkout      (the same, as a part of the full run: --runs each)

Uses FLASHSALE_REDIS_URL and FLASHSALE_DATABASE_URL (an admin URL: a scratch
database is created and dropped; a private key namespace is used and deleted).
For each cart size N: ``--buyers`` carts of N drops each (every drop its own
sale, so its own slot), through ``Checkouts.place`` (N purchases, one PostgreSQL
transaction for the coins, orders and bills), against the same number of serials
bought as single purchases (``Engine.purchase``), both ``--concurrency`` at a time.
Prints one Markdown row per N: serials per second each way and the ratio. The
checkout pays for its transaction and its bills; what it must not do is cost more
per serial as the cart grows.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg

from flashsale.bench.common import Figure, scratch
from flashsale.bench.results import CheckoutCost
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec
from flashsale.orders.checkout import Checkouts
from flashsale.orders.models import CheckoutCreate, CheckoutItem
from flashsale.settings import Settings

HEADER = (
    "| cart size | carts | checkout serials/s | single purchases serials/s | ratio |\n"
    "|---:|---:|---:|---:|---:|"
)


async def _sales(engine: Engine, count: int, serials: int) -> list[str]:
    ids = [f"bc{secrets.token_hex(4)}" for _ in range(count)]
    for n, sale_id in enumerate(ids):
        await engine.create_sale(
            SaleCreate(
                sale_id=sale_id,
                name=f"bench {sale_id}",
                serials=SerialsSpec(range=(1, serials)),
                per_user_limit=1,
                start_at=datetime.now(UTC) - timedelta(minutes=1),
                merchant_id=f"m{n % 2}",  # two merchants: bills split
            )
        )
    return ids


async def _timed(jobs: list[Callable[[], Awaitable[object]]], concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with semaphore:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - started


async def _round(
    engine: Engine, pool: asyncpg.Pool, size: int, buyers: int, concurrency: int
) -> tuple[float, float]:
    """(checkout serials/s, single purchase serials/s) for carts of ``size`` drops."""
    carts = Checkouts(pool, engine)
    drops = await _sales(engine, size, buyers)
    body = CheckoutCreate(items=[CheckoutItem(sale_id=s) for s in drops])
    tag = secrets.token_hex(3)
    checkout_s = await _timed(
        [partial(carts.place, f"c{tag}{i}", body) for i in range(buyers)], concurrency
    )
    singles = await _sales(engine, size, buyers)
    single_s = await _timed(
        [partial(engine.purchase, s, f"p{tag}{i}") for i in range(buyers) for s in singles],
        concurrency,
    )
    serials = size * buyers
    return serials / checkout_s, serials / single_s


async def measure(
    redis_url: str,
    admin_url: str,
    buyers: int,
    sizes: list[int],
    concurrency: int,
    runs: int = 1,
) -> list[CheckoutCost]:
    """Each cart size ``runs`` times (fresh sales each round), in one scratch database."""
    found: list[CheckoutCost] = []
    async with scratch(redis_url, admin_url) as (url, redis, namespace):
        pool = await asyncpg.create_pool(url, min_size=2, max_size=concurrency + 2)
        assert pool is not None
        engine = Engine(redis, namespace=namespace)
        try:
            for size in sizes:
                rounds = [
                    await _round(engine, pool, size, buyers, concurrency) for _ in range(runs)
                ]
                found.append(
                    CheckoutCost(
                        size,
                        buyers,
                        Figure(tuple(c for c, _ in rounds)),
                        Figure(tuple(s for _, s in rounds)),
                        Figure(tuple(c / s for c, s in rounds)),
                    )
                )
        finally:
            await pool.close()
            await engine.aclose()
    return found


def report(costs: list[CheckoutCost]) -> list[str]:
    """The Markdown table: a row per cart size (medians, with the spread over runs)."""
    rows = [HEADER]
    for c in costs:
        rows.append(
            f"| {c.size} | {c.carts:,} | {c.checkout.show()} | {c.single.show()} "
            f"| {c.ratio.show('', 2)} |"
        )
    return rows


async def run(
    redis_url: str, admin_url: str, buyers: int, sizes: list[int], concurrency: int
) -> list[str]:
    rows = report(await measure(redis_url, admin_url, buyers, sizes, concurrency))
    print("\n".join(rows))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--buyers", type=int, default=400)
    parser.add_argument("--items", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    redis_url = settings.redis.url or "redis://127.0.0.1:6379/0"
    admin_url = settings.database.url or "postgresql://postgres@127.0.0.1:5432/postgres"
    asyncio.run(run(redis_url, admin_url, args.buyers, args.items, args.concurrency))


if __name__ == "__main__":
    main()
