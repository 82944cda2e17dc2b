"""``/health`` and ``/metrics`` with 10 and with 10,000 sales ever created.

    python -m flashsale.bench.ops [--scrapes 200]

The app in this process (Litestar's test client, no socket: the server's own
cost), on FLASHSALE_REDIS_URL in a scratch namespace (removed after). Ten
sales are created and marked active (the engine's active set, #12); then
10,000 more sale ids join the registry of every sale, as a long history would.
Prints the median and p99 of each endpoint both ways: they should match. The
last row is the read the endpoints did before (every sale of the registry, the
first 1,000: ``store.lag.lag``), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from flashsale.api.app import create_app
from flashsale.api.tokens import mint_token
from flashsale.engine.keys import active_sales, sales_registry
from flashsale.settings import RedisSettings, Settings
from flashsale.store.lag import lag

SECRET = "bench-ops-secret-0123456789-0123456789"


async def _timings(client: AsyncTestClient, path: str, scrapes: int) -> tuple[float, float]:  # type: ignore[type-arg]
    took = []
    for _ in range(scrapes):
        started = time.perf_counter()
        r = await client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1]


async def run(redis_url: str, scrapes: int) -> None:
    namespace = f"benchops{secrets.token_hex(3)}"
    settings = Settings(jwt_secret=SECRET, redis=RedisSettings(url=redis_url, namespace=namespace))
    redis = Redis.from_url(redis_url)
    admin = {"Authorization": f"Bearer {mint_token(SECRET, 'ops', admin=True)}"}
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            for i in range(10):
                body = {"sale_id": f"s{i}", "name": f"s{i}", "serials": {"range": [1, 100]}}
                assert (await client.post("/v1/sales", json=body, headers=admin)).status_code == 201
            await redis.sadd(active_sales(namespace), *(f"s{i}" for i in range(10)))
            print("| sales ever created | endpoint | median | p99 |")
            print("|---|---|---|---|")
            for history in (10, 10_010):
                if history > 10:
                    await redis.sadd(
                        sales_registry(namespace), *(f"old{i}" for i in range(history - 10))
                    )
                for path in ("/health", "/metrics"):
                    median, p99 = await _timings(client, path, scrapes)
                    print(
                        f"| {history:,} | `{path}` | {median:.2f} ms | {p99:.2f} ms |", flush=True
                    )
            took = []
            for _ in range(max(3, scrapes // 20)):
                started = time.perf_counter()
                await lag(redis, namespace, max_sales=1000)
                took.append((time.perf_counter() - started) * 1000)
            before = statistics.median(took)
            print(f"| 10,010 | before: the lag of every sale (first 1,000) | {before:.0f} ms | |")
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{namespace}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    redis_url = os.environ.get("FLASHSALE_REDIS_URL", "redis://127.0.0.1:6379/0")
    asyncio.run(run(redis_url, args.scrapes))


if __name__ == "__main__":
    main()
