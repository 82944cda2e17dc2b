"""A real process that creates a bucketed drop, for the tests of a creation stopped midway
(test_create_buckets.py).

``python -m tests.engine.create_child REDIS_URL NAMESPACE SALE_ID BUCKETS [list]``, run
with ``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=create.after_bucket_<b>``: it kills itself
(SIGKILL) once bucket b is written, as a crash between two buckets would. With ``list``
the drop is the list ``L-00`` .. ``L-59`` loaded in segments of 25 (a long list's
chunks, small).
"""

from __future__ import annotations

import asyncio
import os
import sys

from flashsale.engine import engine as engine_module
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec


async def main(redis_url: str, namespace: str, sale_id: str, count: str, kind: str) -> None:
    engine = Engine.from_url(redis_url, namespace=namespace)
    serials = SerialsSpec(range=(1, 9))
    if kind == "list":
        engine_module.LIST_CHUNK = 25
        serials = SerialsSpec(list=[f"L-{i:02d}" for i in range(60)])
    spec = SaleCreate(
        sale_id=sale_id,
        name="stopped",
        serials=serials,
        assignment="random",
        buckets=int(count),
    )
    print("finished", (await engine.create_sale(spec)).sale_id, flush=True)
    await engine.aclose()


async def create_in_a_child(
    redis_url: str, namespace: str, sale_id: str, crash_at: str, count: int, kind: str = "range"
) -> None:
    """Run this module as a real process armed to die at ``crash_at``; it must die there."""
    env = {**os.environ, "FLASHSALE_ENV": "dev", "FLASHSALE_CRASH_AT": crash_at}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine.create_child", redis_url, namespace, sale_id,
        str(count), kind, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode == -9, (child.returncode, out.decode() + err.decode())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) > 5 else "range"))
