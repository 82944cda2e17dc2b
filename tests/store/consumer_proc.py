"""A write-behind consumer process for the kill -9 tests (run as a script).

Environment: FS_REDIS_URL, FS_DATABASE_URL, FS_NAMESPACE, and the FLASHSALE_PERSIST_*
knobs. FS_ACK_BEFORE_COMMIT=1 runs the deliberately broken variant that
acknowledges a batch before its transaction commits.
"""

from __future__ import annotations

import asyncio
import os
import signal

import asyncpg
from redis.asyncio import Redis

from flashsale.settings import Settings
from flashsale.store.persist import Persister


async def main() -> None:
    redis = Redis.from_url(os.environ["FS_REDIS_URL"])
    pool = await asyncpg.create_pool(
        os.environ["FS_DATABASE_URL"],
        min_size=1,
        max_size=2,
        server_settings={"application_name": f"fs-consumer-{os.getpid()}"},
    )
    assert pool is not None
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    persister = Persister(
        redis,
        pool,
        namespace=os.environ["FS_NAMESPACE"],
        config=Settings.from_env().persist,
        ack_before_commit=os.environ.get("FS_ACK_BEFORE_COMMIT") == "1",
    )
    print("ready", flush=True)
    await persister.run(stop)
    await pool.close()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
