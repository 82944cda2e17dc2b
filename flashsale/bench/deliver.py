"""Deliveries per second against the local chain, with N mints in flight.

    python -m flashsale.bench.deliver [--orders 600] [--in-flight 1 16 64 256] [--quick]

Uses FLASHSALE_REDIS_URL and FLASHSALE_DATABASE_URL (an admin URL: a scratch
database is created and dropped; a private key namespace is used and deleted)
and starts its own hardhat node (a block per transaction, and one every
``--block-ms``). For each N: a new sale, ``--orders`` paid orders written to
PostgreSQL by the write-behind, every buyer with an address; the deliverer
(FLASHSALE_CHAIN_CONFIRMATIONS=2, at most N mints in flight) runs until every
delivery is confirmed. The time counts from the sale's contract being deployed
to the last confirmation. ``--quick``: 100 orders, N = 8 and 100 (about 30 s).
Prints one Markdown row per N.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from flashsale.bench.common import scratch
from flashsale.chain.deliverer import Deliverer, DeliveryConfig
from flashsale.chain.moves import EngineMoves
from flashsale.chain.rpc import ChainClient
from flashsale.chain.signer import Signer, load_key
from flashsale.devservers.chain import EmbeddedChain
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec
from flashsale.engine.positions import list_positions
from flashsale.settings import Settings
from flashsale.store.persist import Persister

HEADER = (
    "| orders | in flight | confirmations | block interval | deliveries/s | seconds |\n"
    "|---:|---:|---:|---:|---:|---:|"
)
BUYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def _paid(engine: Engine, pool: asyncpg.Pool, sale_id: str, orders: int) -> None:
    await engine.create_sale(
        SaleCreate(
            sale_id=sale_id,
            name=f"bench {sale_id}",
            serials=SerialsSpec(range=(1, orders)),
            start_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    )
    users = [f"{sale_id}-u{i}" for i in range(orders)]
    bought = await asyncio.gather(*(engine.purchase(sale_id, u) for u in users))
    await asyncio.gather(*(engine.confirm_payment(b.order.order_id, "p") for b in bought))
    persister = Persister(engine.redis, pool, namespace=engine.namespace, sales=[sale_id])
    await persister.drain(timeout_s=120)
    await pool.executemany(
        "INSERT INTO chain_addresses (user_id, address) VALUES ($1, $2)",
        [(u, BUYER) for u in users],
    )


async def _round(
    engine: Engine, pool: asyncpg.Pool, node: EmbeddedChain, orders: int, in_flight: int
) -> float:
    sale_id = f"b{secrets.token_hex(3)}"
    await _paid(engine, pool, sale_id, orders)
    client = ChainClient(node.url)
    config = DeliveryConfig(max_in_flight=in_flight, poll_s=0.05, recheck_after_s=2.0)

    async def positions(sale: str) -> dict[str, int]:
        return await list_positions(engine, sale)

    signer = Signer(load_key(node.dev_key), node.chain_id)
    deliverer = Deliverer(pool, client, signer, EngineMoves(engine), positions, config)
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    deadline = time.monotonic() + 600
    started: float | None = None
    try:
        while time.monotonic() < deadline:
            if started is None and await pool.fetchval(
                "SELECT status = 'deployed' FROM sale_contracts WHERE sale_id = $1", sale_id
            ):
                started = time.perf_counter()
            done = await pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE sale_id = $1 AND status = 'confirmed'",
                sale_id,
            )
            if started is not None and done == orders:
                return time.perf_counter() - started
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{orders} deliveries not confirmed in time")
    finally:
        stop.set()
        await task
        await client.close()


async def run(
    redis_url: str, admin_url: str, orders: int, in_flight: list[int], block_ms: int
) -> list[str]:
    rows = [HEADER]
    async with scratch(redis_url, admin_url) as (url, redis, namespace):
        pool = await asyncpg.create_pool(url, min_size=2, max_size=6)
        assert pool is not None
        engine = Engine(redis, namespace=namespace)
        with EmbeddedChain(block_ms=block_ms) as node:
            for n in in_flight:
                seconds = await _round(engine, pool, node, orders, n)
                rows.append(
                    f"| {orders:,} | {n} | 2 | {block_ms} ms | {orders / seconds:,.1f} "
                    f"| {seconds:.1f} |"
                )
                print(rows[-1], flush=True)
        await pool.close()
    print("\n".join(rows))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--block-ms", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="100 orders, N = 8 and 100")
    args = parser.parse_args()
    orders, in_flight = (100, [8, 100]) if args.quick else (args.orders, args.in_flight)
    settings = Settings.from_env()
    redis_url = settings.redis.url or "redis://127.0.0.1:6379/0"
    admin_url = settings.database.url or "postgresql://postgres@127.0.0.1:5432/postgres"
    asyncio.run(run(redis_url, admin_url, orders, in_flight, args.block_ms))


if __name__ == "__main__":
    main()
