"""A real process that tunes a sale, for the tests of a tune stopped midway
(test_tune_buckets.py).

``python -m tests.engine.tune_child REDIS_URL NAMESPACE SALE_ID UPDATE_JSON``, run with
``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=tune.after_bucket_<b>``: it kills itself (SIGKILL)
once bucket b has the tune, as a crash or a lost connection between two buckets would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import msgspec

from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate


async def main(redis_url: str, namespace: str, sale_id: str, update: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    sale = await engine.tune(sale_id, msgspec.json.decode(update, type=SaleUpdate))
    print("finished", sale.status, flush=True)
    await engine.aclose()


async def tune_in_a_child(
    redis_url: str, namespace: str, sale_id: str, update: dict[str, object], crash_at: str
) -> tuple[int, str]:
    """Run this module as a real process armed to die at ``crash_at``: its exit code (-9
    once killed there) and its output."""
    env = {**os.environ, "FLASHSALE_ENV": "dev", "FLASHSALE_CRASH_AT": crash_at}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine.tune_child", redis_url, namespace, sale_id,
        json.dumps(update), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode() + err.decode()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
