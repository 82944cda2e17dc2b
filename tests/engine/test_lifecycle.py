"""Idempotent replays, the sale window, pause/close, released serials resold, tuning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import ORDER_ID, SaleUpdate, SerialsSpec
from flashsale.errors import ValidationFailed

from .helpers import assert_invariants, make_sale


async def test_same_idempotency_key_returns_the_same_order_even_after_sold_out(
    engine: Engine,
) -> None:
    await make_sale(engine, "idem", size=1)
    first = await engine.purchase("idem", "u1", idempotency_key="k-1", fingerprint="body")
    assert not first.replayed
    with pytest.raises(errors.SoldOut):
        await engine.purchase("idem", "u2")
    replay = await engine.purchase("idem", "u1", idempotency_key="k-1", fingerprint="body")
    assert replay.replayed and replay.order.order_id == first.order.order_id
    with pytest.raises(errors.IdempotencyMismatch):
        await engine.purchase("idem", "u1", idempotency_key="k-1", fingerprint="other body")
    # keys are per buyer: another buyer's identical key is a different request
    with pytest.raises(errors.SoldOut):
        await engine.purchase("idem", "u2", idempotency_key="k-1", fingerprint="body")


async def test_a_refusal_is_not_remembered_under_the_key(engine: Engine) -> None:
    await make_sale(engine, "later", size=3)
    await engine.tune("later", SaleUpdate(status="paused"))
    with pytest.raises(errors.SalePaused):
        await engine.purchase("later", "u1", idempotency_key="k", fingerprint="f")
    await engine.tune("later", SaleUpdate(status="open"))
    bought = await engine.purchase("later", "u1", idempotency_key="k", fingerprint="f")
    assert not bought.replayed


async def test_limit_reached_names_the_buyers_live_orders(engine: Engine) -> None:
    await make_sale(engine, "lim", size=5)
    order = (await engine.purchase("lim", "u1")).order
    with pytest.raises(errors.LimitReached) as refused:
        await engine.purchase("lim", "u1")
    assert refused.value.extra["order_ids"] == [order.order_id]
    assert ORDER_ID.match(order.order_id) and order.order_id.startswith("lim.")


async def test_limit_reached_lists_at_most_ten_live_orders_newest_first(engine: Engine) -> None:
    await make_sale(engine, "many", size=50, per_user_limit=12)
    bought = [(await engine.purchase("many", "u1")).order.order_id for _ in range(12)]
    await engine.cancel(bought[0])  # a released order is not listed, and frees a place
    bought.append((await engine.purchase("many", "u1")).order.order_id)
    with pytest.raises(errors.LimitReached) as refused:
        await engine.purchase("many", "u1")
    assert refused.value.extra["order_ids"] == bought[::-1][:10]
    mine = await engine.buyer_orders("many", "u1")
    assert [o.order_id for o in mine] == bought and mine[0].status == "cancelled"


async def test_window_scheduled_open_closed(engine: Engine) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    await make_sale(engine, "win", start_at=start, end_at=start + timedelta(hours=1))
    assert (await engine.get_sale("win")).status == "scheduled"
    with pytest.raises(errors.SaleNotOpen):
        await engine.purchase("win", "u1")
    now = engine.clock()
    engine.clock = lambda: now + 3_600_000 + 1_000  # inside the window
    assert (await engine.purchase("win", "u1")).order.serial == 1
    engine.clock = lambda: now + 2 * 3_600_000 + 1_000  # past end_at
    with pytest.raises(errors.SaleClosed):
        await engine.purchase("win", "u2")
    assert (await engine.get_sale("win")).status == "closed"


async def test_pause_resume_close(engine: Engine) -> None:
    await make_sale(engine, "ops", size=5)
    await engine.tune("ops", SaleUpdate(status="paused"))
    assert (await engine.get_sale("ops")).status == "paused"
    with pytest.raises(errors.SalePaused):
        await engine.purchase("ops", "u1")
    await engine.tune("ops", SaleUpdate(status="open"))
    await engine.purchase("ops", "u1")
    await engine.tune("ops", SaleUpdate(status="closed"))
    with pytest.raises(errors.SaleClosed):
        await engine.purchase("ops", "u2")
    with pytest.raises(errors.SaleClosed):  # closed is final
        await engine.tune("ops", SaleUpdate(status="open"))


async def test_released_serials_are_resold_before_fresh_ones(engine: Engine) -> None:
    await make_sale(engine, "resale", size=3)
    a, b, _ = [(await engine.purchase("resale", f"u{i}")).order for i in range(3)]
    with pytest.raises(errors.SoldOut):
        await engine.purchase("resale", "u9")
    await engine.cancel(b.order_id)
    again = (await engine.purchase("resale", "u9")).order
    assert again.serial == b.serial and again.draw is None
    with pytest.raises(errors.SoldOut):
        await engine.purchase("resale", "u10")
    # the buyer whose order was cancelled may buy again (the live count went down)
    await engine.cancel(a.order_id)
    assert (await engine.purchase("resale", "u1")).order.serial == a.serial
    await assert_invariants(engine, "resale")


async def test_tune_limits_timeout_and_added_serials(engine: Engine) -> None:
    await make_sale(engine, "tune", size=2)
    sale = await engine.tune(
        "tune",
        SaleUpdate(
            per_user_limit=2,
            per_ip_limit=3,
            payment_timeout_s=5,
            add_serials=SerialsSpec(range=(3, 4)),
        ),
    )
    assert (sale.total, sale.available, sale.per_user_limit, sale.per_ip_limit) == (4, 4, 2, 3)
    assert sale.payment_timeout_s == 5
    serials = [(await engine.purchase("tune", "u1")).order.serial for _ in range(2)]
    serials += [(await engine.purchase("tune", "u2")).order.serial for _ in range(2)]
    assert sorted(serials) == [1, 2, 3, 4]
    sale = await engine.tune("tune", SaleUpdate(per_ip_limit=None))
    assert sale.per_ip_limit is None
    with pytest.raises(errors.SerialsRefused):
        await engine.tune("tune", SaleUpdate(add_serials=SerialsSpec(range=(4, 9))))
    with pytest.raises(ValidationFailed):
        await engine.tune("tune", SaleUpdate(add_serials=SerialsSpec(list=["X-1"])))
    assert (await engine.get_sale("tune")).total == 4  # refused tunes changed nothing


async def test_explicit_list_sale_and_long_list_loading(engine: Engine) -> None:
    serials = [f"A-{i:05d}" for i in range(45_000)]  # three load chunks
    seen: list[int] = []
    from flashsale.engine.models import SaleCreate

    sale = await engine.create_sale(
        SaleCreate(
            sale_id="list",
            name="list",
            serials=SerialsSpec(list=serials),
            start_at=datetime.now(UTC) - timedelta(seconds=5),
        ),
        on_progress=lambda done, total: seen.append(done),
    )
    assert sale.total == 45_000 and sale.status == "open" and seen[-1] == 45_000
    order = (await engine.purchase("list", "u1")).order
    assert order.serial == "A-00000"
    with pytest.raises(errors.SerialsRefused):
        await engine.tune("list", SaleUpdate(add_serials=SerialsSpec(list=["A-00001", "B-1"])))
    await engine.tune("list", SaleUpdate(add_serials=SerialsSpec(list=["B-1"])))
    assert (await engine.get_sale("list")).total == 45_001


async def test_a_purchase_reaching_redis_past_its_deadline_does_nothing(engine: Engine) -> None:
    """The caller stopped waiting (it heard 503): a late script must not sell."""
    from flashsale.engine.engine import new_order_id, purchase_argv

    await make_sale(engine, "late", size=3)
    k = engine.keys("late")
    late = ["late", "u1", "", engine.clock(), "", "", 60, new_order_id("late"), 1, ""]  # 1970
    reply = await engine._call("purchase", k.purchase_keys(), purchase_argv(late))
    assert isinstance(errors.refusal(reply), errors.EngineUnavailable)
    sale = await engine.get_sale("late")
    assert (sale.available, sale.reserved) == (3, 0)
    assert await engine.buyer_orders("late", "u1") == []
    assert (await engine.purchase("late", "u1")).order.serial == 1  # a timely one sells
