"""Helpers of the chain tests: paid orders in PostgreSQL, delivery rows, waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, SaleCreate, SerialsSpec
from flashsale.store.persist import Persister
from tests.payments.helpers import eventually

__all__ = ["eventually"]

# hardhat's development accounts #1.. as buyers (any address would do)
BUYERS = [
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
]


async def paid_orders(
    engine: Engine,
    pool: asyncpg.Pool,
    sale_id: str,
    users: list[str],
    *,
    serials: SerialsSpec | None = None,
) -> list[Order]:
    """A sale, one paid order per user, written to PostgreSQL by the write-behind."""
    await engine.create_sale(
        SaleCreate(
            sale_id=sale_id,
            name=f"Drop {sale_id}",
            serials=serials or SerialsSpec(range=(1, max(10, len(users)))),
            start_at=datetime.now(UTC) - timedelta(minutes=1),
            per_user_limit=1,
            price_cents=990,
        )
    )
    orders = [(await engine.purchase(sale_id, user)).order for user in users]
    paid = [await engine.confirm_payment(o.order_id, f"pay-{o.order_id[-8:]}") for o in orders]
    persister = Persister(engine.redis, pool, namespace=engine.namespace, sales=[sale_id])
    await persister.drain(timeout_s=30)
    return paid


async def set_addresses(pool: asyncpg.Pool, addresses: dict[str, str]) -> None:
    from flashsale.chain.addresses import set_address

    for user, address in addresses.items():
        await set_address(pool, user, address)


async def deliveries(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM deliveries")
    return {r["order_id"]: dict(r) for r in rows}


async def statuses(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


def rpc(chain: Any, method: str, *params: Any) -> Any:
    return chain.rpc(method, list(params))


async def wait_status(
    pool: asyncpg.Pool, order_id: str, status: str, timeout_s: float = 30
) -> None:
    async def check() -> bool:
        found = await pool.fetchval("SELECT status FROM deliveries WHERE order_id = $1", order_id)
        return bool(found == status)

    await eventually(check, timeout_s)


async def alerts(pool: asyncpg.Pool) -> list[str]:
    return [r["class"] for r in await pool.fetch("SELECT class FROM delivery_alerts")]


async def txs_when_settled(pool: asyncpg.Pool, order_id: str) -> list[str]:
    """The statuses of an order's transactions (by nonce) once none is open any more (the
    delivery row is written just before its transaction's)."""
    sql = "SELECT status FROM chain_txs WHERE order_id = $1 ORDER BY nonce"

    async def settled() -> bool:
        return all(r["status"] in ("confirmed", "lost") for r in await pool.fetch(sql, order_id))

    await eventually(settled, 10)
    return [r["status"] for r in await pool.fetch(sql, order_id)]
