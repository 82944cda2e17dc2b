"""The write-behind's lag of a bucketed drop is the sale's: /metrics, /health, the console
and ``flashsale sale watch`` label it with the sale id (never a bucket's ``<id>.<b>``),
over every bucket's stream (entries summed, the oldest age the largest)."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flashsale.cli.sale import sample
from flashsale.engine.engine import Engine
from flashsale.engine.keys import home_bucket
from flashsale.engine.models import SaleCreate, SerialsSpec

from .conftest import bearer
from .test_metrics import scrape

ADMIN = bearer("ops-lag", admin=True)


async def test_a_bucketed_drops_lag_is_one_sales(
    client: AsyncTestClient[Litestar], engine: Engine, namespace: str
) -> None:
    sale_id = f"lagb-{namespace}"
    spec = SaleCreate(name="lag", serials=SerialsSpec(range=(1, 9)), sale_id=sale_id, buckets=3)
    await engine.create_sale(spec)
    users = [f"{namespace}-u{i}" for i in range(10_000)]
    homed = {b: [u for u in users if home_bucket(u, 3) == b][:2] for b in (2, 1)}
    for user in [*homed[1], *homed[2][:1]]:  # no write-behind runs: every event is lag
        await engine.purchase(sale_id, user)
    streams = [engine.keys(slot).events for slot in await engine.slots(sale_id)]
    entries = [int(await engine.redis.xlen(key)) for key in streams]
    assert entries[1] == 2 and entries[2] == 1 and entries[0] >= 1  # sale_created in 0

    families = scrape((await client.get("/metrics")).text)
    lag, oldest = (
        families["flashsale_stream_lag"],
        families["flashsale_stream_lag_oldest_age_seconds"],
    )
    ours = [key for key in lag if namespace in key]
    assert ours == [f"flashsale_stream_lag{{sale_id={sale_id}}}"], sorted(lag)
    assert lag[ours[0]] == sum(entries)
    assert [key for key in oldest if namespace in key] == [
        f"flashsale_stream_lag_oldest_age_seconds{{sale_id={sale_id}}}"
    ]
    health = (await client.get("/health")).json()
    assert health["write_behind_lag"] >= sum(entries)
    live = await client.get(f"/v1/admin/sales/{sale_id}/live", headers=ADMIN)
    assert live.status_code == 200 and live.json()["lag"] == sum(entries), live.text
    assert (await sample(engine, sale_id)).lag == sum(entries)  # flashsale sale watch
