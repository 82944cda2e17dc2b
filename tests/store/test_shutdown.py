"""SIGTERM: the consumer finishes the batch in hand (committed and acknowledged), then exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
from redis.exceptions import ResponseError

from flashsale.engine.engine import Engine
from flashsale.engine.keys import PERSIST_GROUP
from flashsale.store.lag import stream_lag

from .store_helpers import buy_many, make_sale

HARNESS = Path(__file__).with_name("consumer_proc.py")


async def test_sigterm_finishes_the_batch_in_hand(
    engine: Engine,
    pg_pool: asyncpg.Pool,
    namespace: str,
    redis_url: str,
    migrated_database_url: str,
) -> None:
    sale_id = f"term-{namespace}"
    await make_sale(engine, sale_id, size=20_000)
    bought = await buy_many(engine, sale_id, [f"u{i}" for i in range(20_000)])
    env = {
        **os.environ,
        "FS_REDIS_URL": redis_url,
        "FS_DATABASE_URL": migrated_database_url,
        "FS_NAMESPACE": namespace,
        "FLASHSALE_PERSIST_BATCH_SIZE": "2000",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HARNESS), env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    key = engine.keys(sale_id).events
    # SIGTERM as soon as the consumer holds a batch (entries delivered, not yet acknowledged)
    try:
        for _ in range(5000):
            try:
                summary = await engine.redis.xpending(key, PERSIST_GROUP)
            except ResponseError:  # the group is not there yet
                summary = None
            if summary and summary["pending"]:
                break
            await asyncio.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    summary = await engine.redis.xpending(key, PERSIST_GROUP)
    assert summary["pending"] == 0, "a delivered batch was left unacknowledged"
    lag = await stream_lag(engine.redis, namespace, sale_id)
    persisted = await pg_pool.fetchval("SELECT count(*) FROM orders WHERE sale_id = $1", sale_id)
    assert 0 < persisted < len(bought), "stopped mid-stream (the test needs a backlog)"
    # everything delivered was written: what is left was never delivered
    # (the stream holds the sale's creation and one entry per purchase)
    assert lag.pending == 0 and lag.undelivered == len(bought) - persisted
