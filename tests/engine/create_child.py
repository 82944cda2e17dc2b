"""A real process that creates a bucketed drop, for the tests of a creation stopped midway
(test_create_buckets.py).

``python -m tests.engine.create_child REDIS_URL NAMESPACE SALE_ID BUCKETS``, run with
``FLASHSALE_ENV=dev FLASHSALE_CRASH_AT=create.after_bucket_<b>``: it kills itself
(SIGKILL) once bucket b is written, as a crash between two buckets would.
"""

from __future__ import annotations

import asyncio
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


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
