"""Coins: platform money beside the balance, spent at checkout, given back once per order.

The balance never goes negative: a spend is a conditional UPDATE whose returned
row is checked, backed by a CHECK constraint; each movement writes its ledger
row in the same transaction. Unique indexes make a checkout spend once, an
order give its coins back once and a credit's Idempotency-Key credit once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from flashsale.engine import statuses
from flashsale.payments import wallet
from flashsale.payments.errors import InsufficientCoins
from flashsale.payments.models import CoinEntry, row_to
from flashsale.payments.queries import q

CoinKind = Literal["credit", "spend", "return"]


def spread(coins_cents: int, prices: Sequence[int]) -> list[int]:
    """Share ``coins_cents`` over ``prices`` in proportion (largest remainder, exact sum).

    Each share is at most its price when the coins do not exceed the total; ties of
    the remainders go to the earlier position, so the spread is deterministic.
    """
    total = sum(prices)
    if coins_cents < 0 or coins_cents > total:
        raise ValueError("coins must be between 0 and the sum of the prices")
    if total == 0:
        return [0] * len(prices)
    shares = [coins_cents * p // total for p in prices]
    left = coins_cents - sum(shares)
    by_remainder = sorted(range(len(prices)), key=lambda i: (-(coins_cents * prices[i] % total), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares


async def move(
    conn: asyncpg.Connection,
    user_id: str,
    currency: str,
    amount_cents: int,
    kind: CoinKind,
    *,
    checkout_id: str | None = None,
    order_id: str | None = None,
    reason: str = "",
    actor: str = "",
    idempotency_key: str | None = None,
) -> int:
    """Move coins in or out inside the caller's transaction; returns the new balance.

    Raises InsufficientCoins when a spend would overdraw; a unique violation (this
    movement was made before) goes to the caller, who decides.
    """
    return await wallet.ledger_move(
        conn,
        (q("ensure_coin_wallet"), q("add_coins"), q("insert_coin_entry")),
        InsufficientCoins("the buyer holds fewer coins than asked for"),
        (user_id, currency, amount_cents, kind),
        (checkout_id, order_id, reason, actor, idempotency_key),
    )


async def balance(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, currency: str) -> int:
    return int(await conn.fetchval(q("coin_balance"), user_id, currency) or 0)


async def entries(
    pool: asyncpg.Pool, user_id: str, currency: str, limit: int = 50
) -> list[CoinEntry]:
    """A buyer's latest coin movements in one currency, latest first."""
    rows = await pool.fetch(q("coin_entries"), user_id, currency, limit)
    return [row_to(CoinEntry, r) for r in rows]


async def credit(
    pool: asyncpg.Pool,
    user_id: str,
    amount_cents: int,
    currency: str,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> None:
    """Ops credit coins; the same Idempotency-Key credits once (as a balance credit)."""
    await wallet.credit_once(
        pool, move, "coins", user_id, amount_cents, currency, reason, actor, idempotency_key
    )


async def give_back(pool: asyncpg.Pool, order_id: str, reason: str) -> int:
    """Return the coins an order carries (once, however often asked); the coins returned."""
    row = await pool.fetchrow(q("coins_of_order"), order_id)
    if row is None or int(row["coins_cents"]) == 0:
        return 0
    try:
        async with pool.acquire() as conn, conn.transaction():
            await move(
                conn,
                row["user_id"],
                row["currency"],
                int(row["coins_cents"]),
                "return",
                checkout_id=row["checkout_id"],
                order_id=order_id,
                reason=reason,
                actor="system",
            )
    except asyncpg.UniqueViolationError:
        return 0  # given back before: exactly once
    return int(row["coins_cents"])


RETURN_GRACE = timedelta(seconds=60)  # the give-back runs right after the order's move


def coins_given_back(
    rows: Sequence[Mapping[str, Any]], orders: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Each order carrying coins got them back exactly when it was released (expired,
    cancelled, refunded); ``rows``: ``audit_coins``, ``orders``: by id, with status and
    updated_at (an order released within the last minute may still be giving them back)."""
    now = datetime.now(UTC)
    found: list[str] = []
    for row in rows:
        order = orders.get(row["order_id"])
        if order is None:
            continue  # not persisted yet: the store's audit counts the lag
        released = order["status"] in statuses.RELEASED
        if released and not row["returned"] and now - order["updated_at"] > RETURN_GRACE:
            found.append(
                f"order {row['order_id']} is {order['status']} but its "
                f"{row['coins_cents']} coins were not given back"
            )
        elif row["returned"] and not released:
            found.append(f"order {row['order_id']} is {order['status']} yet got its coins back")
    return found


async def audit(pool: asyncpg.Pool) -> list[str]:
    """Every coin balance equals the sum of its ledger and is not negative."""
    rows = await pool.fetch(q("coin_wallets_off_ledger"))
    return [
        f"coins {r['user_id']}/{r['currency']}: balance {r['coins_cents']} "
        f"but ledger sums to {r['sum']}"
        for r in rows
    ]
