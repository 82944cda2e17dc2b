"""After-sales: a buyer's ticket on a delivered order, with evidence; ops decide it once.

A ticket is opened on a delivered order within its sale's after-sales window
(one open ticket per order, a unique index). Its evidence is stored in
PostgreSQL by content hash. The decision is a conditional UPDATE of an open
ticket, so of two concurrent decisions one wins and the other is answered
``ticket_already_decided`` (the same decision again answers the ticket
unchanged). Approval is the operator's decision to refund: a refund request
is opened for the order's kept payment and approved at once through the
payment flow's refunds (balance at once, provider money once the provider
confirms); once the money is back the order becomes ``refunded`` through
``Engine.refund_delivered``: its token was minted to the buyer, so its serial
never returns to the pool and stays counted as sold. Until then the order
stays delivered (and a second ticket is refused: a refund is under way).
Each step is idempotent: approving again finishes a refund an outage stopped.
The refund row is the ticket's: the generic review queue refuses to decide it
(``refund_decided_by_ticket``), so a crash between the ticket's approval and its
refund's leaves a refund only the ticket's retried approval can finish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from flashsale.crashpoints import crash_point
from flashsale.engine import errors as engine_errors
from flashsale.engine.models import Order
from flashsale.orders.errors import (
    OrderNotEligible,
    TicketAlreadyDecided,
    TicketAlreadyOpen,
    TicketNotFound,
)
from flashsale.orders.evidence import sha256, sniff
from flashsale.orders.models import Evidence, Ticket, TicketStatus
from flashsale.orders.queries import q
from flashsale.payments import errors as payment_errors
from flashsale.payments.context import new_id
from flashsale.payments.queries import q as payment_q
from flashsale.payments.refunds import AFTER_SALES, Refunds
from flashsale.payments.service import PaymentService
from flashsale.payments.settlement import open_refund

ELIGIBLE: frozenset[str] = frozenset({"delivered", "completed"})
"""Statuses a ticket may be opened on (DESIGN: delivered orders, within the window)."""
REFUNDABLE: frozenset[str] = ELIGIBLE | {"refunded"}  # refunded: approving again is a replay
DEFAULT_WINDOW_S = 604_800  # a sale's after_sales_window_s when it has none


@dataclass(frozen=True, slots=True)
class Upload:
    """One evidence file as received: its bytes (type judged from them)."""

    data: bytes


class AfterSales:
    def __init__(self, service: PaymentService, *, eligible: frozenset[str] = ELIGIBLE) -> None:
        self.service = service
        self.eligible = eligible

    @property
    def pool(self) -> asyncpg.Pool:
        return self.service.pool

    async def _eligible_order(self, order_id: str, user_id: str) -> Order:
        order = await self.service.ctx.owned_order(order_id, user_id)
        if order.status not in self.eligible:
            raise OrderNotEligible(f"the order is {order.status}", order_status=order.status)
        if order.payment_id and await self.pool.fetchval(q("refund_of_payment"), order.payment_id):
            raise OrderNotEligible("a refund of this order is under way", order_status=order.status)
        try:
            sale = await self.service.engine.get_sale(order.sale_id)
            window_s = sale.after_sales_window_s
        except engine_errors.SaleNotFound:
            window_s = DEFAULT_WINDOW_S
        # the window runs from the token's confirmation on chain (else the order's last move)
        delivered_at = await self.pool.fetchval(q("delivered_at"), order_id) or order.updated_at
        if datetime.now(UTC) > delivered_at + timedelta(seconds=window_s):
            raise OrderNotEligible("the after-sales window has passed", order_status=order.status)
        return order

    async def open(
        self, order_id: str, user_id: str, reason: str, files: Sequence[Upload]
    ) -> Ticket:
        """Open a ticket; ``files`` were checked by the caller (count, size, type)."""
        order = await self._eligible_order(order_id, user_id)
        ticket_id = new_id("tk")
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    q("insert_ticket"), ticket_id, order_id, order.sale_id, user_id, reason
                )
                for position, upload in enumerate(files):
                    digest = sha256(upload.data)
                    kind = sniff(upload.data)
                    assert kind is not None  # judged before
                    await conn.execute(
                        q("insert_blob"), digest, kind, len(upload.data), upload.data
                    )
                    await conn.execute(
                        q("insert_evidence"), new_id("ev"), ticket_id, position, digest
                    )
        except asyncpg.UniqueViolationError:
            raise TicketAlreadyOpen("the order has an open ticket") from None
        return await self.get(ticket_id, None)

    async def get(self, ticket_id: str, user_id: str | None) -> Ticket:
        """The ticket, when it exists and (``user_id`` given) is this buyer's."""
        row = await self.pool.fetchrow(q("ticket_by_id"), ticket_id)
        if row is None or (user_id is not None and row["user_id"] != user_id):
            raise TicketNotFound()
        return (await self._tickets([row]))[0]

    async def by_status(self, status: TicketStatus | None, limit: int = 500) -> list[Ticket]:
        return await self._tickets(await self.pool.fetch(q("list_tickets"), status, limit))

    async def evidence_file(
        self, ticket_id: str, evidence_id: str, user_id: str | None
    ) -> tuple[str, bytes]:
        await self.get(ticket_id, user_id)  # ticket_not_found for someone else's
        row = await self.pool.fetchrow(q("evidence_file"), ticket_id, evidence_id)
        if row is None:
            raise TicketNotFound("no such evidence on this ticket")
        return str(row["content_type"]), bytes(row["data"])

    async def _tickets(self, rows: Sequence[Mapping[str, Any]]) -> list[Ticket]:
        ids = [r["ticket_id"] for r in rows]
        evidence: dict[str, list[Evidence]] = {i: [] for i in ids}
        for e in await self.pool.fetch(q("evidence_of_tickets"), ids):
            evidence[e["ticket_id"]].append(
                Evidence(
                    evidence_id=e["evidence_id"],
                    content_type=e["content_type"],
                    bytes=int(e["bytes"]),
                    sha256=e["sha256"],
                )
            )
        return [
            Ticket(
                ticket_id=r["ticket_id"],
                order_id=r["order_id"],
                status=r["status"],
                reason=r["reason"],
                evidence=evidence[r["ticket_id"]],
                created_at=r["created_at"],
                user_id=r["user_id"],
                sale_id=r["sale_id"],
                decided_at=r["decided_at"],
                decided_by=r["decided_by"],
                note=r["note"],
                refund_id=r["refund_id"],
            )
            for r in rows
        ]

    # -- decisions (admin) ---------------------------------------------------------

    async def _decide(
        self, ticket_id: str, decision: TicketStatus, actor: str, note: str | None
    ) -> bool:
        """True when this call made the decision; False when it was made before."""
        won = await self.pool.fetchrow(q("decide_ticket"), ticket_id, decision, actor, note)
        if won is not None:
            return True
        current = await self.pool.fetchrow(q("ticket_by_id"), ticket_id)
        if current is None:
            raise TicketNotFound()
        if current["status"] != decision:
            raise TicketAlreadyDecided(
                f"the ticket was already {current['status']}", ticket_status=current["status"]
            )
        return False

    async def reject(self, ticket_id: str, actor: str, note: str | None) -> Ticket:
        await self._decide(ticket_id, "rejected", actor, note)
        return await self.get(ticket_id, None)

    async def approve(self, ticket_id: str, actor: str, note: str | None) -> Ticket:
        await self._decide(ticket_id, "approved", actor, note)
        await self._refund(await self.get(ticket_id, None), actor)
        return await self.get(ticket_id, None)

    async def _refund(self, ticket: Ticket, actor: str) -> None:
        """Refund the ticket's delivered order once: a refund request, approved at once;
        its execution moves the order to ``refunded`` (Engine.refund_delivered)."""
        service = self.service
        order = await service.ctx.owned_order(ticket.order_id, None)
        payment = await self.pool.fetchrow(
            payment_q("payment_of_order"), order.payment_id, order.order_id
        )
        if payment is None or payment["settlement"] != "kept":
            raise payment_errors.OrderNotCancellable("the order has no kept payment to refund")
        if order.status not in REFUNDABLE:
            raise OrderNotEligible(
                f"the order is {order.status}: it cannot be refunded now",
                order_status=order.status,
            )
        async with self.pool.acquire() as conn:
            await open_refund(conn, payment, AFTER_SALES, ticket.ticket_id, cancels_order=True)
        crash_point("aftersales.refund_opened")  # approving again finishes it
        refund_id = await self.pool.fetchval(q("refund_of_payment"), payment["payment_id"])
        await self.pool.execute(q("set_ticket_refund"), ticket.ticket_id, refund_id)
        refunds = Refunds(service)
        try:
            await refunds.approve(
                refund_id, actor, f"after-sales {ticket.ticket_id}", by_ticket=True
            )
        except payment_errors.RefundAlreadyDecided:
            pass  # approved or executed earlier: the refund is the payment flow's now
