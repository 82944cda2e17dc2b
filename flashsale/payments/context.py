"""What every part of the payment flow shares: its connections, timings, alerts and reads.

The parts (attempts, settlement, callbacks, cancellation) each hold one
``PaymentContext``; ``PaymentService`` builds it once and hands it to all, so a
change of settings (the API learns its own URL late) reaches every part.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.engine.models import Order
from flashsale.payments import errors
from flashsale.payments.failures import Failure, report, severity_of
from flashsale.payments.models import Payment, row_to
from flashsale.payments.provider import Provider
from flashsale.payments.queries import q


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """Timings of the flow. Defaults suit a real gateway; tests shrink them."""

    public_url: str = "http://127.0.0.1:8000"
    """Base of the callback URL given to providers: + /v1/payments/callbacks/{provider}."""
    callback_window_s: float = 60.0
    """The provider's usual callback time: the first active query comes after it."""
    query_backoff_s: float = 60.0
    query_backoff_max_s: float = 1800.0
    lease_s: float = 30.0
    """How long a timer process holds claimed work before another may take it."""
    repair_after_s: float = 5.0
    """A succeeded payment still unsettled after this is settled by the timers."""
    expiry_grace_s: float = 300.0
    """How long an expiry waits for an unreachable provider before expiring anyway."""
    expiry_retry_s: float = 5.0
    start_margin_s: float = 2.0
    """No attempt starts this close to the deadline (covers clock skew against expiry)."""
    create_grace_s: float = 30.0
    """An attempt without a trade this long after it started lost its create answer."""
    concurrency: int = 32

    def notify_url(self, provider: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/payments/callbacks/{provider}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def payment_from_row(row: Mapping[str, Any]) -> Payment:
    payment: Payment = row_to(Payment, row)
    return payment


class PaymentContext:
    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: Engine,
        providers: Mapping[str, Provider],
        settings: PaymentSettings,
    ) -> None:
        self.pool = pool
        self.engine = engine
        self.providers = dict(providers)
        self.settings = settings

    async def alert(self, failure: Failure, **fields: Any) -> None:
        """Report a failure; alerting classes are also stored in payment_alerts."""
        record = report(failure, **fields)
        if severity_of(failure) == "log":
            return
        try:
            await self.pool.execute(
                q("insert_alert"),
                failure.value,
                record["severity"],
                fields.get("order_id"),
                fields.get("payment_id"),
                json.dumps(dict(fields), default=str),
            )
        except (asyncpg.PostgresError, OSError):
            pass  # the log line and the counter already carry it

    async def get_payment(self, payment_id: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(q("payment_by_id"), payment_id)
        return row

    async def payments_for_order(self, order_id: str) -> list[Payment]:
        rows = await self.pool.fetch(q("payments_of_order"), order_id)
        return [payment_from_row(r) for r in rows]

    async def owned_order(self, order_id: str, user_id: str | None) -> Order:
        """The order, when it exists and (``user_id`` given) belongs to this buyer."""
        order = await self.engine.get_order(order_id)
        if order is None or (user_id is not None and order.user_id != user_id):
            raise errors.OrderNotFound()
        return order

    def backoff_s(self, attempts: int) -> float:
        """Delay before the next try after ``attempts`` tries: doubling, capped."""
        s = self.settings
        return float(min(s.query_backoff_max_s, s.query_backoff_s * 2.0 ** max(0, attempts - 1)))


async def gather_bounded(limit: int, coros: list[Any]) -> list[Any]:
    """Run coroutines with at most ``limit`` at once; exceptions are returned, not raised."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
