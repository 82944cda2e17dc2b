"""Repairs: a real process killed (SIGKILL) between the two steps of a paid order's
cancellation (Redis transition, refund row); the timers finish it, and a retried cancel
answers as the first would have."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from flashsale.engine.models import Order
from flashsale.payments.models import PaymentCreate
from flashsale.payments.timers import Timers

from .conftest import Flow
from .helpers import eventually

PROVIDER = PaymentCreate(method="provider", provider="sim")


async def _paid_order(flow: Flow, user: str) -> Order:
    sale = await flow.sale(size=2)
    order = await flow.buy(sale.sale_id, user)
    payment = await flow.service.start_payment(order.order_id, user, PROVIDER)
    await flow.control.pay(payment.pay_url or "")

    async def kept() -> bool:
        row = await flow.service.get_payment(payment.payment_id)
        return row is not None and row["settlement"] == "kept"

    await eventually(kept, 10)
    got = await flow.engine.get_order(order.order_id)
    assert got is not None and got.status == "paid"
    return got


async def _cancel_in_a_child(
    urls: tuple[str, str], flow: Flow, order: Order, crash_at: str | None
) -> tuple[int, str]:
    """Cancel in a child process (armed to die at ``crash_at``); its exit code and stdout."""
    redis_url, dsn = urls
    env = {**os.environ, "FLASHSALE_ENV": "dev"}
    env.pop("FLASHSALE_CRASH_AT", None)
    if crash_at:
        env["FLASHSALE_CRASH_AT"] = crash_at
    args = [redis_url, flow.engine.namespace, dsn, order.order_id, order.user_id]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.payments.crash_child",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode() + err.decode()


async def _refunds(flow: Flow, order: Order) -> list[str]:
    rows = await flow.pool.fetch(
        "SELECT status FROM refunds WHERE order_id = $1 AND cancels_order", order.order_id
    )
    return [r["status"] for r in rows]


@pytest.mark.parametrize("crash_at", ["cancel.after_redis", "cancel.before_redis"])
async def test_the_timers_finish_a_cancellation_killed_between_its_steps(
    flow: Flow, redis_url: str, payments_db: str, crash_at: str
) -> None:
    order = await _paid_order(flow, f"crash-{crash_at[7:]}")
    code, output = await _cancel_in_a_child((redis_url, payments_db), flow, order, crash_at)
    assert code == -9, (code, output)
    # half done: Redis moved (or not), no refund row for review
    got = await flow.engine.get_order(order.order_id)
    assert got is not None
    assert got.status == ("refund_pending" if crash_at == "cancel.after_redis" else "paid")
    assert await _refunds(flow, order) == []

    timers = Timers(flow.service, interval_s=0.05)
    repaired = 0

    async def finished() -> bool:
        nonlocal repaired
        repaired += (await timers.tick()).repaired
        return await _refunds(flow, order) == ["pending"]

    await eventually(finished, 10)
    got = await flow.engine.get_order(order.order_id)
    assert got is not None and got.status == "refund_pending" and repaired >= 1
    alerts = await flow.pool.fetchval(
        "SELECT count(*) FROM payment_alerts WHERE class = 'cancel_repaired' AND order_id = $1",
        order.order_id,
    )
    assert alerts == 1
    # nothing left to finish: another tick changes nothing
    await timers.tick()
    assert await _refunds(flow, order) == ["pending"]


async def test_a_retried_cancel_after_a_crash_answers_as_the_first_would_have(
    flow: Flow, redis_url: str, payments_db: str
) -> None:
    urls = (redis_url, payments_db)
    order = await _paid_order(flow, "crash-retry")
    code, output = await _cancel_in_a_child(urls, flow, order, "cancel.after_redis")
    assert code == -9, output
    assert await _refunds(flow, order) == []
    # the buyer retries (a new process: the first one is dead)
    code, output = await _cancel_in_a_child(urls, flow, order, None)
    assert code == 0 and output.split() == ["finished", "refund_pending"], output
    assert await _refunds(flow, order) == ["pending"]
    # and in this process too, as the API would answer
    answer = await flow.service.cancel_order(order.order_id, order.user_id)
    assert answer.status == "refund_pending"
    assert await _refunds(flow, order) == ["pending"]
