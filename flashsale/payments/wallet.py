"""Wallets: one balance per buyer per currency, and a ledger row for every movement.

The balance never goes negative: a debit is a conditional UPDATE
(``balance_cents >= amount``) whose affected row is checked, backed by a CHECK
constraint. Each movement writes its ledger row in the same transaction, with
the balance after it, and unique indexes make a debit or reversal happen once
per payment and a refund credit once per refund.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

import asyncpg

from flashsale.engine.errors import IdempotencyMismatch
from flashsale.errors import FlashsaleError, ValidationFailed
from flashsale.payments import errors
from flashsale.payments.models import Balance, Ledger, LedgerEntry, Wallet, WalletEntry, row_to
from flashsale.payments.queries import q
from flashsale.store.paging import check_limit, decode_cursor, encode_cursor

EntryKind = Literal["credit", "debit", "reversal", "refund"]


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
    return await ledger_move(
        conn,
        (q("ensure_wallet"), q("add_to_wallet"), q("insert_wallet_entry")),
        errors.InsufficientBalance("the wallet balance does not cover the price"),
        (user_id, currency, amount_cents, kind),
        (payment_id, refund_id, reason, actor, idempotency_key),
    )


async def ledger_move(
    conn: asyncpg.Connection,
    sql: tuple[str, str, str],
    short: FlashsaleError,
    movement: tuple[str, str, int, str],
    entry: tuple[str | None, str | None, str, str, str | None],
    /,
) -> int:
    """One movement of a ledger kept as a balance row plus entry rows (wallets, coins).

    ``sql``: ensure the balance row, add to it (no row: it would go negative), insert
    the entry. ``movement``: user, currency, signed amount, kind; ``entry``: the
    entry's two references, reason, actor and idempotency key. Raises ``short`` when
    the balance does not cover a debit.
    """
    ensure, add, insert = sql
    user_id, currency, amount_cents, kind = movement
    await conn.execute(ensure, user_id, currency)
    balance = await conn.fetchval(add, user_id, currency, amount_cents)
    if balance is None:
        raise short
    first, second, reason, actor, key = entry
    await conn.fetchval(
        insert, user_id, currency, amount_cents, balance, kind, first, second, reason, actor, key
    )
    return int(balance)


CreditKind = Literal["balance", "coins"]


async def credit(
    pool: asyncpg.Pool,
    user_id: str,
    amount_cents: int,
    currency: str,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> Wallet:
    """Ops credit a wallet; the same Idempotency-Key credits once (the API requires one).

    A replay (same key, same amount, currency and reason) answers the wallet as it
    is; the same key with another credit is ``idempotency_key_reused``.
    """
    await credit_once(
        pool, move, "balance", user_id, amount_cents, currency, reason, actor, idempotency_key
    )
    return await read(pool, user_id, currency)


async def credit_once(
    pool: asyncpg.Pool,
    move_in: Callable[..., Awaitable[int]],
    kind: CreditKind,
    user_id: str,
    amount_cents: int,
    currency: str,
    reason: str,
    actor: str,
    idempotency_key: str | None,
) -> None:
    """A credit through ``move_in`` (a ledger's ``move``), once per Idempotency-Key.

    The key binds the whole credit across both ledgers: the same key with another
    kind, amount, currency or reason is ``idempotency_key_reused``. Each ledger's
    unique index alone would let one key credit the balance and the coins.
    """
    if amount_cents <= 0:
        raise ValidationFailed("amount_cents must be positive")
    async with pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            # Two credits with one key wait for each other: the second sees the first.
            await conn.execute(q("lock_credit_key"), user_id, idempotency_key)
            first = await conn.fetchrow(q("credit_by_key"), user_id, idempotency_key)
            if first is not None:
                if (first["kind"], first["amount_cents"], first["currency"], first["reason"]) != (
                    kind,
                    amount_cents,
                    currency,
                    reason,
                ):
                    raise IdempotencyMismatch("this Idempotency-Key was used for another credit")
                return  # a replay: credited once already
        await move_in(
            conn,
            user_id,
            currency,
            amount_cents,
            "credit",
            reason=reason,
            actor=actor,
            idempotency_key=idempotency_key,
        )


async def read(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str, currency: str, limit: int = 50
) -> Wallet:
    balance = await conn.fetchval(q("wallet_balance"), user_id, currency)
    rows = await conn.fetch(q("wallet_entries"), user_id, currency, limit)
    return Wallet(
        user_id=user_id,
        balance_cents=int(balance or 0),
        currency=currency,
        entries=[row_to(WalletEntry, r) for r in rows],
    )


async def ledger(
    pool: asyncpg.Pool,
    user_id: str,
    *,
    currency: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Ledger:
    """A buyer's balances and coins, and a page of the movements of both in every currency
    (or one), latest first."""
    after: tuple[datetime | None, str | None, int | None] = (None, None, None)
    if cursor:
        at, kind, entry_id = decode_cursor(cursor, 3)
        try:
            after = (datetime.fromisoformat(at), kind, int(entry_id))
        except (TypeError, ValueError):
            raise ValidationFailed("cursor is not one this server gave out") from None
        if kind not in ("balance", "coins") or after[0] is None or after[0].tzinfo is None:
            raise ValidationFailed("cursor is not one this server gave out")
    rows = await pool.fetch(q("ledger_entries"), user_id, currency, *after, check_limit(limit) + 1)
    shown = rows[:limit]
    balances = await pool.fetch(q("ledger_balances"), user_id)
    last = shown[-1] if len(rows) > limit else None
    return Ledger(
        user_id=user_id,
        balances=[row_to(Balance, r) for r in balances],
        entries=[row_to(LedgerEntry, r) for r in shown],
        next_cursor=None
        if last is None
        else encode_cursor(last["created_at"].isoformat(), last["ledger"], last["entry_id"]),
    )


async def audit(pool: asyncpg.Pool) -> list[str]:
    """Every wallet's balance equals the sum of its ledger and is not negative."""
    rows = await pool.fetch(q("wallets_off_ledger"))
    return [
        f"wallet {r['user_id']}/{r['currency']}: balance {r['balance_cents']} "
        f"but ledger sums to {r['sum']}"
        for r in rows
    ]
