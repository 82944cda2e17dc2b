"""The seam between delivery and the order's status in Redis: the deliverer moves an
order through these three calls and nothing else.

``start_delivery`` is called before an order's first mint is signed: from then
on the order is being delivered and can no longer be cancelled for a refund.
It answers None when the order may be delivered, else the order's status that
forbids it (cancelled for a refund meanwhile): nothing is minted then.
``confirm_delivery`` follows the mint's confirmations; ``fail_delivery`` a
delivery given up (an alert says why). All three may be called twice for one order
(a crash, or a failure between the call and the deliverer's own record): they
must be idempotent (``start_delivery`` of an order already delivering: None).

`EngineMoves` implements it with the engine's delivery transitions, one Lua
script each (docs/design.md#delivery-on-chain): ``start_delivery`` is
paid -> delivering, ``confirm_delivery`` delivering -> delivered (scheduled for
completion after the sale's after-sales window), ``fail_delivery`` delivering ->
paid again (the order stays paid, undelivered, with the reason; an operator
refunds or redelivers it).
"""

from __future__ import annotations

import logging
from typing import Protocol

from flashsale.engine import errors
from flashsale.engine.engine import Engine

log = logging.getLogger("flashsale.deliver")


class OrderMoves(Protocol):
    async def start_delivery(self, order_id: str) -> str | None: ...

    async def confirm_delivery(self, order_id: str) -> None: ...

    async def fail_delivery(self, order_id: str, reason: str) -> None: ...


class EngineMoves:
    """`OrderMoves` on the engine's delivery transitions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def start_delivery(self, order_id: str) -> str | None:
        try:
            await self.engine.start_delivery(order_id)  # delivering already: a replay
        except errors.OrderNotFound:
            return "missing"
        except errors.OrderNotPending as exc:
            return str(exc.extra.get("status"))
        return None

    async def confirm_delivery(self, order_id: str) -> None:
        try:
            await self.engine.confirm_delivery(order_id)
        except errors.OrderNotPending as exc:
            if exc.extra.get("status") != "paid":
                # minted to the buyer while the order left delivery: the chain is the truth
                # of the token; the order is for an operator (the audit shows it too)
                log.error("order %s delivered on chain but is %s", order_id, exc.extra["status"])
                return
            # a mint found landed after its delivery was given up (back to paid)
            await self.engine.start_delivery(order_id)
            await self.engine.confirm_delivery(order_id)

    async def fail_delivery(self, order_id: str, reason: str) -> None:
        try:
            await self.engine.fail_delivery(order_id, reason)
        except errors.OrderNotPending as exc:
            log.warning("giving up %s, which is %s: left as it is", order_id, exc.extra["status"])


__all__ = ["EngineMoves", "OrderMoves"]
