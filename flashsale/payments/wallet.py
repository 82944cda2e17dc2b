"""Wallets: one balance per buyer per currency, and a ledger row for every movement.

The balance never goes negative: a debit is a conditional UPDATE
(``balance_cents >= amount``) whose affected row is checked, backed by a CHECK
constraint. Each movement writes its ledger row in the same transaction, with
the balance after it, and unique indexes make a debit or reversal happen once
per payment and a refund credit once per refund.
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from flashsale.payments import errors
from flashsale.payments.models import Wallet, WalletEntry, row_to

EntryKind = Literal["credit", "debit", "reversal", "refund"]

_ENSURE = """
INSERT INTO wallets (user_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
_ADD = """
UPDATE wallets SET balance_cents = balance_cents + $3, updated_at = now()
 WHERE user_id = $1 AND currency = $2 AND balance_cents + $3 >= 0
RETURNING balance_cents
"""
_ENTRY = """
INSERT INTO wallet_entries (user_id, currency, amount_cents, balance_after_cents, kind,
                            payment_id, refund_id, reason, actor, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING entry_id
"""


async def move(
    conn: asyncpg.Connection,
    user_id: str,
    currency: str,
    amount_cents: int,
    kind: EntryKind,
    *,
    payment_id: str | None = None,
    refund_id: str | None = None,
    reason: str = "",
    actor: str = "",
    idempotency_key: str | None = None,
) -> int:
    """Move money in or out inside the caller's transaction; returns the new balance.

    Raises InsufficientBalance when a debit would overdraw, and lets a unique
    violation through when this movement was already made (the caller decides).
    """
    await conn.execute(_ENSURE, user_id, currency)
    balance = await conn.fetchval(_ADD, user_id, currency, amount_cents)
    if balance is None:
        raise errors.InsufficientBalance("the wallet balance does not cover the price")
    await conn.fetchval(
        _ENTRY,
        user_id,
        currency,
        amount_cents,
        balance,
        kind,
        payment_id,
        refund_id,
        reason,
        actor,
        idempotency_key,
    )
    return int(balance)


async def credit(
    pool: asyncpg.Pool,
    user_id: str,
    amount_cents: int,
    currency: str,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> Wallet:
    """Ops credit a wallet; the same Idempotency-Key credits once."""
    if amount_cents <= 0:
        raise errors.Validation("amount_cents must be positive")
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await move(
                    conn,
                    user_id,
                    currency,
                    amount_cents,
                    "credit",
                    reason=reason,
                    actor=actor,
                    idempotency_key=idempotency_key,
                )
        except asyncpg.UniqueViolationError:
            pass  # a replayed credit: answer the wallet as it is
        return await read(conn, user_id, currency)


async def read(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str, currency: str, limit: int = 50
) -> Wallet:
    balance = await conn.fetchval(
        "SELECT balance_cents FROM wallets WHERE user_id = $1 AND currency = $2",
        user_id,
        currency,
    )
    rows = await conn.fetch(
        "SELECT * FROM wallet_entries WHERE user_id = $1 AND currency = $2"
        " ORDER BY entry_id DESC LIMIT $3",
        user_id,
        currency,
        limit,
    )
    return Wallet(
        user_id=user_id,
        balance_cents=int(balance or 0),
        currency=currency,
        entries=[row_to(WalletEntry, r) for r in rows],
    )


async def audit(pool: asyncpg.Pool) -> list[str]:
    """Every wallet's balance equals the sum of its ledger and is not negative."""
    rows = await pool.fetch(
        """
        SELECT w.user_id, w.currency, w.balance_cents, COALESCE(SUM(e.amount_cents), 0) AS sum
          FROM wallets w
          LEFT JOIN wallet_entries e ON e.user_id = w.user_id AND e.currency = w.currency
         GROUP BY w.user_id, w.currency, w.balance_cents
        HAVING w.balance_cents <> COALESCE(SUM(e.amount_cents), 0) OR w.balance_cents < 0
        """
    )
    return [
        f"wallet {r['user_id']}/{r['currency']}: balance {r['balance_cents']} "
        f"but ledger sums to {r['sum']}"
        for r in rows
    ]
