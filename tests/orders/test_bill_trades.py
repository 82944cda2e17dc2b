"""A bill paid through the provider simulator (a real process): one trade for the bill,
settled into a share per order; a second trade for a paid bill becomes a refund; a
share is refunded through the bill's trade."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.engine.engine import Engine
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.audit import money_audit
from flashsale.payments.paysim.control import PaysimControl
from flashsale.payments.provider import SimProvider
from flashsale.payments.service import PaymentService
from flashsale.settings import PaymentsSettings
from tests.api.conftest import app_settings
from tests.api.helpers import problem
from tests.payments.conftest import SECRET, paysim  # noqa: F401  (the simulator fixture)
from tests.paysim.paysim_harness import PaysimProcess

from .conftest import ADMIN, Client, credit, place

User = Callable[[str], tuple[str, dict[str, str]]]
SIM = {"method": "provider", "provider": "sim"}


@pytest.fixture
async def sim_client(
    redis_url: str,
    migrated_database_url: str,
    namespace: str,
    engine: Engine,
    paysim: PaysimProcess,  # noqa: F811
) -> AsyncIterator[Client]:
    settings = replace(
        app_settings(redis_url, namespace, database_url=migrated_database_url),
        payments=PaymentsSettings(paysim_url=paysim.url, paysim_secret=SECRET),
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


@pytest.fixture
async def sim(
    pool: asyncpg.Pool,
    engine: Engine,
    paysim: PaysimProcess,  # noqa: F811
) -> AsyncIterator[tuple[PaymentService, PaysimControl]]:
    """The payment flow as the timers run it (their active query stands in for the
    callback, which goes nowhere here), and the simulator's buyer side."""
    provider = SimProvider(paysim.url, SECRET, timeout_s=15.0)
    control = PaysimControl(paysim.url, timeout_s=15.0)
    try:
        yield PaymentService(pool, engine, {"sim": provider}, bills=BillSettlement), control
    finally:
        await control.aclose()
        await provider.aclose()


async def _paid_by_trade(
    service: PaymentService, control: PaysimControl, pool: asyncpg.Pool, payment: dict[str, Any]
) -> str:
    await control.pay(payment["pay_url"])
    row = await pool.fetchrow("SELECT * FROM payments WHERE payment_id = $1", payment["payment_id"])
    return str(await service.query_attempt(row))


async def test_one_trade_pays_the_bill_and_a_share_is_refunded_through_it(
    sim_client: Client,
    make_sale: Any,
    user: User,
    sim: tuple[PaymentService, PaysimControl],
    pool: asyncpg.Pool,
    engine: Engine,
) -> None:
    client = sim_client
    service, control = sim
    a = await make_sale(merchant_id="m-a", price_cents=1000)
    b = await make_sale(merchant_id="m-b", price_cents=2000)
    buyer, headers = user("trade")
    await credit(client, buyer, 300, kind="coins")
    out = await place(
        client,
        headers,
        {"items": [{"sale_id": a["sale_id"]}, {"sale_id": b["sale_id"]}], "coins_cents": 300},
    )
    path = f"/v1/bills/{out['bill']['bill_id']}/payments"
    first = await client.post(path, json=SIM, headers=headers)
    second = await client.post(path, json=SIM, headers=headers)  # the buyer opened it twice
    assert first.status_code == 201 and second.status_code == 201, first.text
    payment = first.json()
    assert payment["status"] == "pending" and payment["amount_cents"] == 2700
    assert payment["bill_id"] == out["bill"]["bill_id"] and payment["pay_url"]

    assert await _paid_by_trade(service, control, pool, payment) == "kept"
    orders = [await engine.get_order(o["order_id"]) for o in out["orders"]]
    assert [o.status for o in orders if o] == ["paid", "paid"]
    bills = await pool.fetch(
        "SELECT kind, status FROM bills WHERE checkout_id = $1", out["checkout_id"]
    )
    assert {(r["kind"], r["status"]) for r in bills} == {("parent", "paid"), ("merchant", "paid")}
    shares = await pool.fetch(
        "SELECT order_id, captured_cents, settlement FROM payments"
        " WHERE parent_payment_id = $1 ORDER BY captured_cents",
        payment["payment_id"],
    )
    assert [(r["captured_cents"], r["settlement"]) for r in shares] == [
        (900, "kept"),
        (1800, "kept"),
    ]
    assert await _paid_by_trade(service, control, pool, payment) in ("already", "ignored")

    # the second trade, paid too (it was closed when the bill was paid, or it is refunded)
    try:
        outcome = await _paid_by_trade(service, control, pool, second.json())
    except Exception:  # the simulator refuses to pay a closed trade
        outcome = "closed"
    assert outcome in ("closed", "refund")

    # a paid order cancelled: its share goes back through the bill's trade
    order_id = out["orders"][0]["order_id"]
    r = await client.post(f"/v1/orders/{order_id}/cancel", headers=headers)
    assert r.json()["status"] == "refund_pending", r.text
    refunds = (await client.get("/v1/admin/refunds?status=pending", headers=ADMIN)).json()
    mine = [x for x in refunds if x["order_id"] == order_id]
    assert len(mine) == 1 and mine[0]["amount_cents"] == 900
    r = await client.post(
        f"/v1/admin/refunds/{mine[0]['refund_id']}/approve", json={}, headers=ADMIN
    )
    assert r.json()["status"] == "refunded", r.text
    trade = await service.providers["sim"].query(payment["provider_trade_no"])
    assert trade.refunded_cents == 900
    for sale in (a, b):
        audit = await money_audit(pool, sale["sale_id"], engine)
        assert audit.ok, audit.violations


async def test_a_provider_bill_refuses_what_a_balance_bill_refuses(
    sim_client: Client, make_sale: Any, user: User
) -> None:
    a = await make_sale(price_cents=1000)
    _, headers = user("sim-refusals")
    out = await place(sim_client, headers, {"items": [{"sale_id": a["sale_id"]}]})
    path = f"/v1/bills/{out['bill']['bill_id']}/payments"
    problem(
        await sim_client.post(
            path, json={"method": "provider", "provider": "nope"}, headers=headers
        ),
        404,
        "unknown_provider",
    )
