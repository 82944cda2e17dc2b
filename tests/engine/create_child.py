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


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) > 5 else "range"))
