"""`flashsale payments approve` says whether the money went back, and which provider it needs."""

from __future__ import annotations

import asyncio
import json
import secrets

import asyncpg

import flashsale.cli.main  # noqa: F401  (registers the payments commands with their wiring)
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.cli import open_service
from flashsale.settings import Settings

from .conftest import Cli

PAYMENT = """
INSERT INTO payments (payment_id, order_id, sale_id, user_id, method, provider, status,
                      amount_cents, currency, captured_cents, provider_trade_no, settlement)
VALUES ($1, $2, 'cli-sale', $3, $4, $5, 'succeeded', 990, 'CNY', 990, $6, 'refund')
"""
REFUND = """
INSERT INTO refunds (refund_id, payment_id, order_id, sale_id, user_id, method,
                     amount_cents, currency, reason)
VALUES ($1, $2, $3, 'cli-sale', $4, $5, 990, 'CNY', 'duplicate_payment')
"""


def _plant(cli: Cli, method: str) -> str:
    """A pending refund of a duplicate payment, by wallet or through the `sim` provider."""
    tag = secrets.token_hex(4)
    refund_id, payment_id, order_id, user = f"rf_{tag}", f"pay_{tag}", f"o.{tag}", f"u-{tag}"
    provider, trade = ("sim", f"T{tag}") if method == "provider" else (None, None)

    async def plant() -> None:
        conn = await asyncpg.connect(cli.database_url)
        try:
            async with conn.transaction():
                await conn.execute(PAYMENT, payment_id, order_id, user, method, provider, trade)
                await conn.execute(REFUND, refund_id, payment_id, order_id, user, method)
        finally:
            await conn.close()

    asyncio.run(plant())
    return refund_id


async def _status(cli: Cli, refund_id: str) -> str:
    conn = await asyncpg.connect(cli.database_url)
    try:
        return str(
            await conn.fetchval("SELECT status FROM refunds WHERE refund_id = $1", refund_id)
        )
    finally:
        await conn.close()


def test_a_wallet_refund_is_said_executed(cli: Cli) -> None:
    refund_id = _plant(cli, "balance")
    done = cli.run("payments", "approve", refund_id)
    assert done.returncode == 0, done.stderr
    assert f"refund {refund_id} refunded, executed: 9.90 CNY sent back" in done.stdout
    again = cli.run("payments", "approve", refund_id, "--json")
    assert again.returncode == 0, again.stderr
    body = json.loads(again.stdout)
    assert body["outcome"] == "executed" and body["refund"]["last_error"] is None


def test_a_provider_refund_needs_the_provider_address(cli: Cli) -> None:
    refund_id = _plant(cli, "provider")
    done = cli.run("payments", "approve", refund_id)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "FLASHSALE_PAYSIM_URL is not set" in line and refund_id in line
    assert asyncio.run(_status(cli, refund_id)) == "pending", "nothing was decided"


def test_an_unreachable_provider_leaves_the_refund_queued(cli: Cli) -> None:
    refund_id = _plant(cli, "provider")
    done = cli.run(
        "payments", "approve", refund_id, "--json", FLASHSALE_PAYSIM_URL="http://127.0.0.1:9"
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["outcome"] == "queued" and body["refund"]["status"] == "approved"
    assert body["refund"]["last_error"] and body["refund"]["next_attempt_at"]


def test_the_timers_and_payments_commands_settle_bills(cli: Cli) -> None:
    """Payments sit below orders: the `flashsale` command hands the bill settler in, so the
    service `flashsale timers` and `flashsale payments ...` open settles bills (#11)."""

    async def bills_of_the_service() -> object:
        async with open_service(Settings.from_env(cli.env)) as service:
            return service.settlement.bills

    assert isinstance(asyncio.run(bills_of_the_service()), BillSettlement)


async def _pending_orders(cli: Cli, sale_id: str, count: int) -> list[str]:
    engine = Engine.from_url(
        cli.env["FLASHSALE_REDIS_URL"], namespace=cli.env["FLASHSALE_NAMESPACE"]
    )
    try:
        await engine.create_sale(
            SaleCreate(sale_id=sale_id, name="delisted", serials=SerialsSpec(range=(1, count)))
        )
        return [(await engine.purchase(sale_id, f"inv-{i}")).order.order_id for i in range(count)]
    finally:
        await engine.aclose()


def test_invalidation_reports_page_by_page_then_the_total(cli: Cli) -> None:
    sale_id = f"inv-{secrets.token_hex(3)}"
    orders = asyncio.run(_pending_orders(cli, sale_id, 3))
    done = cli.run("payments", "invalidate", sale_id, "--json")
    assert done.returncode == 0, done.stderr
    *pages, total = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(i for page in pages for i in page["cancelled"]) == sorted(orders)
    assert total == {"sale_id": sale_id, "total": 3}
    again = cli.run("payments", "invalidate", sale_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"cancelled 0 pending orders of sale {sale_id} in all"
