"""After-sales on orders really delivered: bought and paid over HTTP, minted on a real
hardhat node by the deliverer, then a ticket with evidence, decided by ops over HTTP.

An approved ticket refunds the payment once and the order becomes ``refunded`` while its
token stays with the buyer: the serial never returns to the pool and stays sold (the
audit agrees); a rejected one leaves the order delivered; a ticket past the window: 409.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from flashsale.api.app import create_app
from flashsale.chain.addresses import checksummed
from flashsale.chain.rpc import ChainClient
from flashsale.devservers.chain import EmbeddedChain
from flashsale.devservers.ports import free_port
from flashsale.engine.engine import Engine
from flashsale.loadtest.demo_delivery import demo_address
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.audit import money_audit
from flashsale.payments.paysim.control import PaysimControl
from flashsale.payments.provider import SimProvider
from flashsale.payments.refunds import Refunds
from flashsale.payments.service import PaymentService
from flashsale.settings import PaymentsSettings
from flashsale.store.audit import audit_sale
from flashsale.store.persist import Persister
from tests.api.conftest import app_settings, bearer
from tests.api.helpers import problem
from tests.chain.helpers import set_addresses, wait_status
from tests.orders.conftest import Client, app_client, buy_with_balance
from tests.payments.conftest import SECRET, paysim  # noqa: F401  (the simulator fixture)
from tests.paysim.paysim_harness import PaysimProcess

pytestmark = pytest.mark.timeout(120)

ADMIN = bearer("ops-aftersales", admin=True)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PRICE, CREDIT = 1200, 5000


@pytest.fixture
async def client(
    redis_url: str, chain_db: str, namespace: str, engine: Engine
) -> AsyncIterator[Client]:
    async with app_client(redis_url, namespace, chain_db) as c:
        yield c


Pay = Callable[[Client, str, str, dict[str, str]], Awaitable[dict[str, Any]]]


async def by_balance(client: Client, sale_id: str, name: str, headers: dict[str, str]) -> Any:
    return await buy_with_balance(client, sale_id, name, headers, CREDIT)


async def delivered(
    client: Client,
    engine: Engine,
    pool: asyncpg.Pool,
    make_deliverer: Any,
    sale_id: str,
    names: list[str],
    pay: Pay = by_balance,
) -> list[tuple[str, dict[str, str]]]:
    """One order per buyer bought and paid (``pay``) over HTTP, minted and delivered."""
    created = await client.post(
        "/v1/sales",
        json={
            "sale_id": sale_id,
            "name": "drop",
            "serials": {"range": [1, 10]},
            "price_cents": PRICE,
            "per_user_limit": 1,
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    bought: list[tuple[str, dict[str, str]]] = []
    for name in names:
        headers = bearer(name)
        order = await pay(client, sale_id, name, headers)
        bought.append((order["order_id"], headers))
    await Persister(engine.redis, pool, namespace=engine.namespace, sales=[sale_id]).drain()
    await set_addresses(pool, {name: demo_address(name) for name in names})
    running = make_deliverer()
    running.start()
    for order_id, _ in bought:
        await wait_status(pool, order_id, "confirmed")
    await running.halt()
    for order_id, headers in bought:
        read = (await client.get(f"/v1/orders/{order_id}", headers=headers)).json()
        assert read["status"] == "delivered", read
    return bought


async def ticket(client: Client, order_id: str, headers: dict[str, str]) -> Any:
    return await client.post(
        f"/v1/orders/{order_id}/after-sales",
        data={"reason": "the art is not the one shown"},
        files=[("evidence", ("proof.png", PNG, "image/png"))],
        headers=headers,
    )


async def status_of(client: Client, order_id: str, headers: dict[str, str]) -> str:
    status: str = (await client.get(f"/v1/orders/{order_id}", headers=headers)).json()["status"]
    return status


async def balance(client: Client, headers: dict[str, str]) -> tuple[int, int]:
    body = (await client.get("/v1/me/wallet", headers=headers)).json()
    refunds = [e for e in body["entries"] if e["kind"] == "refund"]
    return int(body["balance_cents"]), len(refunds)


async def test_approved_refunds_once_rejected_stays_delivered_and_the_serial_stays_sold(
    client: Client,
    engine: Engine,
    chain_pool: asyncpg.Pool,
    make_deliverer: Any,
    namespace: str,
    chain: EmbeddedChain,
) -> None:
    sale_id = f"{namespace}-as"
    names = [f"{namespace}-{n}" for n in ("approved", "rejected", "completed", "raced")]
    (approved, h1), (rejected, h2), (completed, h3), (raced, h4) = await delivered(
        client, engine, chain_pool, make_deliverer, sale_id, names
    )
    before = (await client.get(f"/v1/sales/{sale_id}")).json()
    assert before["sold"] == 4

    # a completed order (by its buyer) is still within the window
    done = await client.post(f"/v1/orders/{completed}/complete", headers=h3)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text

    tickets = {}
    for order_id, headers in ((approved, h1), (rejected, h2), (completed, h3), (raced, h4)):
        opened = await ticket(client, order_id, headers)
        assert opened.status_code == 201, opened.text
        assert opened.json()["evidence"][0]["content_type"] == "image/png"
        tickets[order_id] = opened.json()["ticket_id"]

    # two concurrent approvals: one decision, one refund
    base = f"/v1/admin/after-sales/{tickets[approved]}"
    answers = await asyncio.gather(
        *(client.post(f"{base}/approve", json={"note": "ok"}, headers=ADMIN) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert {a.json()["status"] for a in answers} == {"approved"}
    assert len({a.json()["refund_id"] for a in answers}) == 1
    assert await status_of(client, approved, h1) == "refunded"
    assert await balance(client, h1) == (CREDIT, 1)
    # the other decision now: 409, nothing moves
    refused = problem(
        await client.post(f"{base}/reject", json={}, headers=ADMIN), 409, "ticket_already_decided"
    )
    assert refused["ticket_status"] == "approved", refused
    assert await balance(client, h1) == (CREDIT, 1)

    rejected_answer = await client.post(
        f"/v1/admin/after-sales/{tickets[rejected]}/reject", json={"note": "no"}, headers=ADMIN
    )
    assert rejected_answer.status_code == 200 and rejected_answer.json()["status"] == "rejected"
    assert await status_of(client, rejected, h2) == "delivered"
    assert await balance(client, h2) == (CREDIT - PRICE, 0)

    approved_completed = await client.post(
        f"/v1/admin/after-sales/{tickets[completed]}/approve", json={}, headers=ADMIN
    )
    assert approved_completed.status_code == 200, approved_completed.text
    assert await status_of(client, completed, h3) == "refunded"
    assert await balance(client, h3) == (CREDIT, 1)

    # approval against rejection at once: one decision, the order follows it
    base = f"/v1/admin/after-sales/{tickets[raced]}"
    answers = await asyncio.gather(
        client.post(f"{base}/approve", json={}, headers=ADMIN),
        client.post(f"{base}/reject", json={}, headers=ADMIN),
    )
    won = [a for a in answers if a.status_code == 200]
    assert len(won) == 1, [a.text for a in answers]
    problem(next(a for a in answers if a.status_code != 200), 409, "ticket_already_decided")
    if won[0].json()["status"] == "approved":
        assert await status_of(client, raced, h4) == "refunded"
        assert await balance(client, h4) == (CREDIT, 1)
    else:
        assert await status_of(client, raced, h4) == "delivered"
        assert await balance(client, h4) == (CREDIT - PRICE, 0)

    # a refunded order takes no new ticket; its buyer still holds the token (1 per buyer)
    problem(await ticket(client, approved, h1), 409, "order_not_eligible")
    problem(
        await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=h1),
        409,
        "limit_reached",
    )

    # the tokens stay minted: no serial back in the pool, still sold
    after = (await client.get(f"/v1/sales/{sale_id}")).json()
    assert (after["sold"], after["available"]) == (before["sold"], before["available"])
    assert await engine.redis.llen(engine.keys(sale_id).returned) == 0
    kept = 2 + (won[0].json()["status"] == "approved")
    assert int(await engine.redis.hget(engine.keys(sale_id).meta, "kept")) == kept

    # read back from the chain: the refunded order's token is still its buyer's
    token = await chain_pool.fetchrow(
        "SELECT d.token_id, c.contract FROM deliveries d JOIN sale_contracts c USING (sale_id)"
        " WHERE d.order_id = $1",
        approved,
    )
    rpc = ChainClient(chain.url)
    try:
        owner = await rpc.owner_of(token["contract"], int(token["token_id"]))
    finally:
        await rpc.close()
    assert owner == checksummed(demo_address(names[0]))

    # persisted by the write-behind; the audit agrees with Redis and PostgreSQL
    await Persister(engine.redis, chain_pool, namespace=engine.namespace, sales=[sale_id]).drain()
    rows = {
        r["order_id"]: r["status"]
        for r in await chain_pool.fetch(
            "SELECT order_id, status FROM orders WHERE sale_id = $1", sale_id
        )
    }
    raced_status = "refunded" if kept == 3 else "delivered"
    assert rows == {
        approved: "refunded",
        rejected: "delivered",
        completed: "refunded",
        raced: raced_status,
    }
    events = await chain_pool.fetchval(
        "SELECT count(*) FROM order_events WHERE type = 'refunded_after_delivery'"
        " AND order_id = ANY($1)",
        [approved, rejected, completed, raced],
    )
    assert events == kept
    report = await audit_sale(engine.redis, chain_pool, engine.namespace, sale_id)
    assert report.ok, report.violations
    money = await money_audit(chain_pool, sale_id, engine)
    assert money.ok, money


async def test_a_ticket_past_the_window_is_refused(
    client: Client,
    engine: Engine,
    chain_pool: asyncpg.Pool,
    make_deliverer: Any,
    namespace: str,
) -> None:
    sale_id = f"{namespace}-late"
    ((order_id, headers),) = await delivered(
        client, engine, chain_pool, make_deliverer, sale_id, [f"{namespace}-late"]
    )
    # the token was confirmed on chain eight days ago (the window is seven)
    await chain_pool.execute(
        "UPDATE deliveries SET confirmed_at = confirmed_at - interval '8 days' WHERE order_id = $1",
        order_id,
    )
    problem(await ticket(client, order_id, headers), 409, "order_not_eligible")
    assert (
        await chain_pool.fetchval(
            "SELECT count(*) FROM after_sales_tickets WHERE order_id = $1", order_id
        )
        == 0
    )
    await chain_pool.execute(
        "UPDATE deliveries SET confirmed_at = now() - interval '6 days' WHERE order_id = $1",
        order_id,
    )
    assert (await ticket(client, order_id, headers)).status_code == 201


async def test_a_provider_payment_is_refunded_once_the_provider_answers(
    redis_url: str,
    chain_db: str,
    namespace: str,
    engine: Engine,
    chain_pool: asyncpg.Pool,
    make_deliverer: Any,
    paysim: PaysimProcess,  # noqa: F811
) -> None:
    provider = SimProvider(paysim.url, SECRET, timeout_s=15.0)
    control = PaysimControl(paysim.url, timeout_s=15.0)
    service = PaymentService(chain_pool, engine, {"sim": provider}, bills=BillSettlement)

    async def by_provider(client: Client, sale_id: str, name: str, headers: dict[str, str]) -> Any:
        order = (
            await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=headers)
        ).json()
        payment = (
            await client.post(
                f"/v1/orders/{order['order_id']}/payments",
                json={"method": "provider", "provider": "sim"},
                headers=headers,
            )
        ).json()
        await control.pay(payment["pay_url"])  # the buyer pays at the provider
        row = await chain_pool.fetchrow(
            "SELECT * FROM payments WHERE payment_id = $1", payment["payment_id"]
        )
        assert await service.query_attempt(row) == "kept"  # the callback goes nowhere here
        return order

    sim_settings = replace(
        app_settings(redis_url, namespace, database_url=chain_db),
        payments=PaymentsSettings(paysim_url=paysim.url, paysim_secret=SECRET),
    )
    # the same app while the provider cannot be reached (nothing listens on its port)
    down_settings = replace(
        sim_settings,
        payments=PaymentsSettings(
            paysim_url=f"http://127.0.0.1:{free_port()}", paysim_secret=SECRET
        ),
    )
    try:
        async with (
            AsyncTestClient(app=create_app(sim_settings)) as client,
            AsyncTestClient(app=create_app(down_settings)) as down,
        ):
            ((order_id, headers),) = await delivered(
                client,
                engine,
                chain_pool,
                make_deliverer,
                f"{namespace}-sim",
                [f"{namespace}-sim"],
                by_provider,
            )
            opened = await ticket(client, order_id, headers)
            assert opened.status_code == 201, opened.text
            base = f"/v1/admin/after-sales/{opened.json()['ticket_id']}"
            approved = await down.post(f"{base}/approve", json={}, headers=ADMIN)
            assert approved.status_code == 200 and approved.json()["status"] == "approved"
            # the money is not back yet: the order stays delivered, the refund waits
            assert await status_of(client, order_id, headers) == "delivered"
            refund = await chain_pool.fetchrow(
                "SELECT * FROM refunds WHERE refund_id = $1", approved.json()["refund_id"]
            )
            assert refund["status"] == "approved" and refund["last_error"]
            problem(await ticket(client, order_id, headers), 409, "order_not_eligible")

            # the timers try again once the provider answers (due now, not after back-off)
            await chain_pool.execute(
                "UPDATE refunds SET next_attempt_at = now() WHERE refund_id = $1",
                refund["refund_id"],
            )
            assert await Refunds(service).retry_due() == 1
            assert await status_of(client, order_id, headers) == "refunded"
            again = await client.post(f"{base}/approve", json={}, headers=ADMIN)
            assert again.status_code == 200 and again.json()["status"] == "approved"
            payment = await chain_pool.fetchrow(
                "SELECT provider_trade_no FROM payments WHERE order_id = $1", order_id
            )
            trade = await provider.query(payment["provider_trade_no"])
            assert trade.refunded_cents == PRICE  # once
    finally:
        await control.aclose()
        await provider.aclose()


async def test_an_approval_a_crash_cut_is_finished_by_the_ticket_alone(
    client: Client,
    engine: Engine,
    chain_pool: asyncpg.Pool,
    make_deliverer: Any,
    namespace: str,
    redis_url: str,
    chain_db: str,
) -> None:
    """Killed between opening the ticket's refund and approving it: the review queue may
    not decide that refund (a rejection there would leave the ticket approved, no money
    moved); approving the ticket again refunds once."""
    sale_id = f"{namespace}-cut"
    ((order_id, headers),) = await delivered(
        client, engine, chain_pool, make_deliverer, sale_id, [f"{namespace}-cut"]
    )
    opened = await ticket(client, order_id, headers)
    assert opened.status_code == 201, opened.text
    ticket_id = opened.json()["ticket_id"]
    env = {**os.environ, "FLASHSALE_ENV": "dev", "FLASHSALE_CRASH_AT": "aftersales.refund_opened"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.chain.approve_child", redis_url, engine.namespace, chain_db,
        ticket_id, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert child.returncode == -9, (out + err).decode()
    # half done: the ticket approved, its refund pending, no money moved
    read = (await client.get(f"/v1/after-sales/{ticket_id}", headers=ADMIN)).json()
    assert read["status"] == "approved"
    pending = (await client.get("/v1/admin/refunds?status=pending", headers=ADMIN)).json()
    (refund,) = [r for r in pending if r["order_id"] == order_id]
    assert refund["reason"] == "after_sales"
    assert await balance(client, headers) == (CREDIT - PRICE, 0)

    # the review queue may not decide it, either way
    for decision in ("reject", "approve"):
        refused = await client.post(
            f"/v1/admin/refunds/{refund['refund_id']}/{decision}", json={}, headers=ADMIN
        )
        problem(refused, 409, "refund_decided_by_ticket")
        assert refused.json()["ticket_id"] == ticket_id
    assert await balance(client, headers) == (CREDIT - PRICE, 0)

    # the ticket's approval, retried, finishes it once
    for _ in range(2):
        again = await client.post(
            f"/v1/admin/after-sales/{ticket_id}/approve", json={}, headers=ADMIN
        )
        assert again.status_code == 200 and again.json()["status"] == "approved", again.text
        assert again.json()["refund_id"] == refund["refund_id"]
        assert await status_of(client, order_id, headers) == "refunded"
        assert await balance(client, headers) == (CREDIT, 1)
    money = await money_audit(chain_pool, sale_id, engine)
    assert money.ok, money
