"""Provider callbacks: verified, remembered, applied once, answered 200 once durable.

Replay protection rests on the notice, not on the signature's bytes: a
signature is checked (MAC and timestamp window, ``signing.verify``), then the
notice is looked up by the provider's ``notify_id`` (``callback_notices``).
One seen before is a redelivery, whether the provider sent the very same signed
request again or re-signed it (the signature's encoding is not ours to judge):
it answers 200 and changes nothing. A captured request replayed inside the
window is the same redelivery; outside it, it is stale (401). Anything that
cannot be made durable answers non-200, and the provider delivers again later.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from flashsale.errors import DatabaseUnavailable
from flashsale.payments.context import PaymentContext
from flashsale.payments.failures import Failure, report
from flashsale.payments.models import CallbackAnswer
from flashsale.payments.provider import CallbackNotice, MalformedCallback
from flashsale.payments.queries import q
from flashsale.payments.settlement import Outcome, Settlement, TradeFacts
from flashsale.payments.signing import SignatureError


class Callbacks:
    def __init__(self, ctx: PaymentContext, settlement: Settlement) -> None:
        self.ctx = ctx
        self.settlement = settlement

    async def handle(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> CallbackAnswer:
        """``POST /v1/payments/callbacks/{provider}``: 200 once the notice is durable."""
        provider = self.ctx.providers.get(provider_name)
        if provider is None:
            return CallbackAnswer(status_code=404, body={"code": "unknown_provider"})
        try:
            notice = provider.verify_callback(headers, body)
        except SignatureError as exc:
            failure = Failure.STALE_CALLBACK if exc.reason == "stale" else Failure.BAD_SIGNATURE
            await self.ctx.alert(failure, provider=provider_name, reason=exc.reason)
            return CallbackAnswer(status_code=401, body={"code": "unauthenticated"})
        except MalformedCallback as exc:
            await self.ctx.alert(Failure.MALFORMED_CALLBACK, provider=provider_name, error=str(exc))
            return CallbackAnswer(status_code=400, body={"code": "validation_error"})
        try:
            return await self._process_notice(provider_name, notice)
        except (asyncpg.PostgresError, OSError) as exc:
            # Not durable: a non-200 makes the provider deliver again later.
            await self.ctx.alert(
                Failure.CONFIRM_DEFERRED, notify_id=notice.notify_id, error=repr(exc)
            )
            return CallbackAnswer(status_code=503, body={"code": DatabaseUnavailable.code})

    async def _process_notice(self, provider_name: str, notice: CallbackNotice) -> CallbackAnswer:
        pool = self.ctx.pool
        seen = await pool.fetchrow(q("count_notice_delivery"), provider_name, notice.notify_id)
        if seen is not None:
            if (seen["payment_id"], seen["status"]) != (notice.out_trade_no, notice.status):
                # the first facts stand; the provider is told 200 so it stops retrying
                await self.ctx.alert(
                    Failure.NOTICE_CONFLICT,
                    provider=provider_name,
                    notify_id=notice.notify_id,
                    payment_id=notice.out_trade_no,
                    first=f"{seen['payment_id']} {seen['status']}",
                    now=f"{notice.out_trade_no} {notice.status}",
                )
            else:
                report(
                    Failure.DUPLICATE_CALLBACK, notify_id=notice.notify_id, outcome=seen["outcome"]
                )
            return CallbackAnswer(status_code=200, body={"result": "duplicate"})
        row = await pool.fetchrow(q("payment_of_provider"), notice.out_trade_no, provider_name)
        outcome: Outcome
        if row is None:
            await self.ctx.alert(
                Failure.UNKNOWN_ORDER,
                provider=provider_name,
                notify_id=notice.notify_id,
                out_trade_no=notice.out_trade_no,
                trade_no=notice.trade_no,
                order_id=notice.order_id,
                status=notice.status,
                amount_cents=notice.amount_cents,
            )
            outcome = "unknown"
        else:
            facts = TradeFacts(
                status=notice.status,
                trade_no=notice.trade_no,
                order_id=notice.order_id,
                amount_cents=notice.amount_cents,
                currency=notice.currency,
                paid_at=notice.paid_at,
            )
            outcome = await self.settlement.apply_trade(row, facts, source="callback")
        await pool.execute(
            q("record_notice"),
            provider_name,
            notice.notify_id,
            notice.out_trade_no,
            notice.status,
            outcome,
        )
        return CallbackAnswer(status_code=200, body={"result": outcome})
