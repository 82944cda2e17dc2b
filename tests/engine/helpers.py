"""Small helpers for engine tests: sale creation and invariant checks read from Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, Sale, SaleCreate, SerialsSpec
from flashsale.engine.statuses import HOLDS_SERIAL, SOLD
from flashsale.settings import Settings


async def make_sale(
    engine: Engine, sale_id: str = "drop", *, size: int = 10, **overrides: Any
) -> Sale:
    fields: dict[str, Any] = {
        "sale_id": sale_id,
        "name": f"sale {sale_id}",
        "serials": SerialsSpec(range=(1, size)),
        "start_at": datetime.now(UTC) - timedelta(minutes=1),
    }
    fields.update(overrides)
    return await engine.create_sale(SaleCreate(**fields))


async def all_orders(engine: Engine, sale_id: str) -> list[Order]:
    return await engine.orders_of_sale(sale_id)


async def assert_invariants(engine: Engine, sale_id: str) -> list[Order]:
    """Invariants 1-3 (docs/design.md#invariants), recomputed from the orders themselves."""
    sale = await engine.get_sale(sale_id)
    orders = await all_orders(engine, sale_id)
    # A refund_pending order (paid, cancelled before delivery) keeps its serial, counted
    # in ``sold`` and in its buyer's limit, until an operator decides.
    live = [o for o in orders if o.status in HOLDS_SERIAL]
    pending = sum(o.status == "pending_payment" for o in orders)
    paid = sum(o.status in SOLD for o in orders)
    # refunded after delivery: the token stays minted, so the serial stays sold ("kept")
    kept = int(await engine.redis.hget(engine.keys(sale_id).meta, "kept") or 0)
    assert kept <= sum(o.status == "refunded" for o in orders)
    assert sale.reserved == pending, (sale.reserved, pending)
    assert sale.sold == paid + kept, (sale.sold, paid, kept)
    assert sale.available + sale.reserved + sale.sold == sale.total
    serials = [o.serial for o in live]
    assert len(serials) == len(set(serials)), "a serial is held by two live orders"
    per_buyer: dict[str, int] = {}
    for order in live:
        per_buyer[order.user_id] = per_buyer.get(order.user_id, 0) + 1
    peak = int(await engine.redis.hget(engine.keys(sale_id).meta, "peak_user_limit"))
    assert max(per_buyer.values(), default=0) <= max(peak, sale.per_user_limit)
    k = engine.keys(sale_id)
    meta = await engine.redis.hmget(k.meta, ["total", "drawn"])
    returned = await engine.redis.llen(k.returned)
    assert int(meta[0]) - int(meta[1]) + returned == sale.available, "pool disagrees with counters"
    return orders


async def delete_sale(engine: Engine, sale_id: str) -> None:
    """Remove one sale's keys by name: no SCAN over a (possibly large) shared keyspace."""
    from flashsale.engine.keys import sales_registry

    keys = engine.keys(sale_id)
    await engine.redis.unlink(*keys.all_fixed(), sales_registry(engine.namespace))


def model_examples(suite_default: int) -> int:
    """How many drops a model-based test plays: the suite's bounded default, or a soak's
    FLASHSALE_MODEL_EXAMPLES."""
    return Settings.from_env().dev.model_examples or suite_default
