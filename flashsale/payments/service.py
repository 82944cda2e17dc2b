"""The payment flow as one object: what the API, the timers and refund review call.

``PaymentService`` wires the parts over one shared ``PaymentContext`` and
passes each call to the part that does it:

- ``attempts``: starting a provider or a balance payment;
- ``settlement``: settling a succeeded payment (kept, refund, reversed),
  applying what a provider says, active queries, closing trades;
- ``callbacks``: provider callbacks, verified and applied once;
- ``cancellation``: expiry with payments in flight, cancel, paid -> refund request,
  invalidation of a changed sale's pending orders.

Wallets and payment passwords have modules of their own (``wallet``, ``passwords``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order
from flashsale.payments import coins, wallet
from flashsale.payments.attempts import Attempts
from flashsale.payments.callbacks import Callbacks
from flashsale.payments.cancellation import Cancellation
from flashsale.payments.context import PaymentContext, PaymentSettings, gather_bounded
from flashsale.payments.failures import Failure
from flashsale.payments.models import CallbackAnswer, Payment, PaymentCreate, Wallet
from flashsale.payments.passwords import PasswordPolicy, Passwords
from flashsale.payments.provider import Provider
from flashsale.payments.settlement import BillPaymentsFactory, Outcome, Settlement

__all__ = ["PaymentService", "PaymentSettings", "gather_bounded"]


class PaymentService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: Engine,
        providers: Mapping[str, Provider],
        settings: PaymentSettings | None = None,
        *,
        password_policy: PasswordPolicy | None = None,
        bills: BillPaymentsFactory | None = None,
    ) -> None:
        """``bills`` settles payments of bills (``orders.bill_settlement.BillSettlement``);
        without it every payment is taken as an order's own."""
        self.ctx = PaymentContext(pool, engine, providers, settings or PaymentSettings())
        self.passwords = Passwords(pool, password_policy)
        self.settlement = Settlement(self.ctx)
        self.settlement.bills = bills(self.ctx, self.settlement) if bills is not None else None
        self.callbacks = Callbacks(self.ctx, self.settlement)
        self.cancellation = Cancellation(self.ctx, self.settlement)
        self.attempts = Attempts(self.ctx, self.passwords, self.settlement, self.cancellation)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.ctx.pool

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    @property
    def providers(self) -> dict[str, Provider]:
        return self.ctx.providers

    @property
    def settings(self) -> PaymentSettings:
        return self.ctx.settings

    @settings.setter
    def settings(self, settings: PaymentSettings) -> None:
        self.ctx.settings = settings  # every part reads it from the shared context

    async def alert(self, failure: Failure, **fields: Any) -> None:
        """Report a failure; alerting classes are also stored in payment_alerts."""
        await self.ctx.alert(failure, **fields)

    # -- reads ---------------------------------------------------------------------

    async def get_payment(self, payment_id: str) -> asyncpg.Record | None:
        return await self.ctx.get_payment(payment_id)

    async def payments_for_order(self, order_id: str) -> list[Payment]:
        return await self.ctx.payments_for_order(order_id)

    # -- the parts -----------------------------------------------------------------

    async def start_payment(self, order_id: str, user_id: str, body: PaymentCreate) -> Payment:
        return await self.attempts.start_payment(order_id, user_id, body)

    async def settle(self, row: Mapping[str, Any]) -> Outcome:
        return await self.settlement.settle(row)

    async def query_attempt(self, row: Mapping[str, Any]) -> Outcome:
        return await self.settlement.query_attempt(row)

    async def handle_callback(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> CallbackAnswer:
        return await self.callbacks.handle(provider_name, headers, body)

    async def expire_order(self, order_id: str) -> str:
        return await self.cancellation.expire_order(order_id)

    async def cancel_order(
        self,
        order_id: str,
        user_id: str | None,
        *,
        reason: str = "cancelled by buyer",
        force: bool = False,
    ) -> Order:
        return await self.cancellation.cancel_order(order_id, user_id, reason=reason, force=force)

    def invalidate_pending_orders(self, sale_id: str, reason: str) -> AsyncIterator[list[str]]:
        """The ids cancelled, page by page (``Cancellation.invalidate_pending_orders``)."""
        return self.cancellation.invalidate_pending_orders(sale_id, reason)

    # -- wallet and password ---------------------------------------------------------

    async def set_password(self, user_id: str, password: str, old_password: str | None) -> None:
        await self.passwords.set(user_id, password, old_password)

    async def wallet(self, user_id: str, currency: str = "CNY") -> Wallet:
        read = await wallet.read(self.pool, user_id, currency)
        read.coins_cents = await coins.balance(self.pool, user_id, currency)
        read.coin_entries = await coins.entries(self.pool, user_id, currency)
        return read

    async def credit_wallet(
        self,
        user_id: str,
        amount_cents: int,
        reason: str,
        *,
        actor: str,
        currency: str = "CNY",
        idempotency_key: str | None = None,
        kind: Literal["balance", "coins"] = "balance",
    ) -> Wallet:
        """Credit the balance, or (``kind="coins"``) the coins; answers the wallet."""
        if kind == "coins":
            await coins.credit(
                self.pool, user_id, amount_cents, currency, reason, actor, idempotency_key
            )
        else:
            await wallet.credit(
                self.pool, user_id, amount_cents, currency, reason, actor, idempotency_key
            )
        return await self.wallet(user_id, currency)
