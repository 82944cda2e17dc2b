"""Repairs: a real process killed (SIGKILL) between an order's release in Redis (expiry,
cancel) and its coins' return and bills' closing; the timers finish it, exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from flashsale.engine.engine import Engine
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.audit import money_audit
from flashsale.payments.service import PaymentService, PaymentSettings
from flashsale.payments.timers import Timers
from tests.payments.helpers import eventually

from .conftest import Client, credit, place, wallet

User = Callable[[str], tuple[str, dict[str, str]]]
CRASH_AT = "release.before_give_back"


async def _release_in_a_child(
    urls: tuple[str, str, str], order_id: str, user_id: str, action: str, crash_at: str | None
) -> tuple[int, str]:
    """Expire or cancel in a child process (armed to die at ``crash_at``)."""
    env = {**os.environ, "FLASHSALE_ENV": "dev"}
    env.pop("FLASHSALE_CRASH_AT", None)
    if crash_at:
        env["FLASHSALE_CRASH_AT"] = crash_at
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.orders.release_child", *urls, order_id, user_id, action,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode() + err.decode()


async def _returns(pool: asyncpg.Pool, order_id: str) -> int:
    sql = "SELECT count(*) FROM coin_entries WHERE order_id = $1 AND kind = 'return'"
    return int(await pool.fetchval(sql, order_id))


@pytest.mark.parametrize("action", ["expire", "cancel"])
async def test_the_timers_give_back_the_coins_of_a_release_a_crash_cut(
    client: Client,
    make_sale: Any,
    user: User,
    pool: asyncpg.Pool,
    engine: Engine,
    redis_url: str,
    migrated_database_url: str,
    action: str,
) -> None:
    quick = await make_sale(payment_timeout_s=1 if action == "expire" else 1800)
    other = await make_sale()
    buyer, headers = user(f"crash-{action}")
    await credit(client, buyer, 600, kind="coins")
    body = {"items": [{"sale_id": quick["sale_id"]}, {"sale_id": other["sale_id"]}]}
    out = await place(client, headers, {**body, "coins_cents": 600})
    order_id = out["orders"][0]["order_id"]
    if action == "expire":

        async def due() -> bool:
            return order_id in await engine.due_expiries(quick["sale_id"])

        await eventually(due, timeout_s=10)
    urls = (redis_url, engine.namespace, migrated_database_url)
    code, output = await _release_in_a_child(urls, order_id, buyer, action, CRASH_AT)
    assert code == -9, (code, output)
    # half done: released in Redis, the coins kept and the bill open
    released = await engine.get_order(order_id)
    assert (
        released is not None
        and released.status == {"expire": "expired", "cancel": "cancelled"}[action]
    )
    assert (await wallet(client, headers))["coins_cents"] == 0
    bill = (await client.get(f"/v1/bills/{out['bill']['bill_id']}", headers=headers)).json()
    assert bill["status"] == "open"

    service = PaymentService(
        pool, engine, {}, PaymentSettings(repair_after_s=0.2), bills=BillSettlement
    )
    timers = Timers(service)
    repaired = 0

    async def given_back() -> bool:
        nonlocal repaired
        repaired += (await timers.tick()).repaired
        return (await wallet(client, headers))["coins_cents"] == 300

    await eventually(given_back, timeout_s=10)
    assert repaired >= 1
    bill = (await client.get(f"/v1/bills/{out['bill']['bill_id']}", headers=headers)).json()
    assert bill["status"] == "closed"
    # exactly once: more ticks, and the buyer's retry, give nothing more
    for _ in range(3):
        await timers.tick()
    code, output = await _release_in_a_child(urls, order_id, buyer, action, None)
    assert code == 0, output
    assert (await wallet(client, headers))["coins_cents"] == 300
    assert await _returns(pool, order_id) == 1
    left = "SELECT release_started_at FROM checkout_orders WHERE order_id = $1"
    assert await pool.fetchval(left, order_id) is None
    audit = await money_audit(pool, quick["sale_id"], engine)
    assert audit.ok, audit.violations


async def test_an_order_not_released_drops_its_intent_and_keeps_its_coins(
    client: Client, make_sale: Any, user: User, pool: asyncpg.Pool, engine: Engine
) -> None:
    """An intent whose transition never happened (a crash before it, or a payment won):
    the sweep gives nothing back and forgets it."""
    sale = await make_sale()
    buyer, headers = user("no-release")
    await credit(client, buyer, 200, kind="coins")
    out = await place(
        client, headers, {"items": [{"sale_id": sale["sale_id"]}], "coins_cents": 200}
    )
    order_id = out["orders"][0]["order_id"]
    await pool.execute(
        "UPDATE checkout_orders SET release_started_at = now() - interval '1 minute'"
        " WHERE order_id = $1",
        order_id,
    )
    service = PaymentService(
        pool, engine, {}, PaymentSettings(repair_after_s=0.2), bills=BillSettlement
    )
    assert (await Timers(service).tick()).repaired == 0
    assert (await wallet(client, headers))["coins_cents"] == 0
    left = "SELECT release_started_at FROM checkout_orders WHERE order_id = $1"
    assert await pool.fetchval(left, order_id) is None
    got = await engine.get_order(order_id)
    assert got is not None and got.status == "pending_payment"
