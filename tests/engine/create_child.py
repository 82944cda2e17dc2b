"""A real process that creates a bucketed drop, for the tests of a creation stopped midway
(test_create_buckets.py).

``python -m tests.engine.create_child REDIS_URL NAMESPACE SALE_ID BUCKETS``, run with
``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=create.after_bucket_<b>``: it kills itself
(SIGKILL) once bucket b is written, as a crash between two buckets would.
"""

from __future__ import annotations

import asyncio
import os
import sys

from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec


async def main(redis_url: str, namespace: str, sale_id: str, count: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    spec = SaleCreate(
        sale_id=sale_id,
        name="stopped",
        serials=SerialsSpec(range=(1, 9)),
        assignment="random",
        buckets=int(count),
    )
    print("finished", (await engine.create_sale(spec)).sale_id, flush=True)
    await engine.aclose()


async def create_in_a_child(
    redis_url: str, namespace: str, sale_id: str, crash_at: str, count: int
) -> None:
    """Run this module as a real process armed to die at ``crash_at``; it must die there."""
    env = {**os.environ, "FLASHSALE_ENV": "dev", "FLASHSALE_CRASH_AT": crash_at}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine.create_child", redis_url, namespace, sale_id,
        str(count), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode == -9, (child.returncode, out.decode() + err.decode())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
