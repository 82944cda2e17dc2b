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

`EngineMoves` implements it with what the engine has today: no transition
produces ``delivering`` or ``delivered`` yet, so ``start_delivery`` checks that
the order is ``paid`` and the other two change nothing. Once the engine has
its delivery transitions, these three become ``engine.start_delivery``,
``engine.confirm_delivery`` and ``engine.fail_delivery`` (docs/design.md#delivery-on-chain).
"""

from __future__ import annotations

from typing import Protocol

from flashsale.engine.engine import Engine

# paid, or delivering already (a retry, once the engine has that status)
DELIVERABLE: frozenset[str] = frozenset({"paid", "delivering"})


class OrderMoves(Protocol):
    async def start_delivery(self, order_id: str) -> str | None: ...

    async def confirm_delivery(self, order_id: str) -> None: ...

    async def fail_delivery(self, order_id: str, reason: str) -> None: ...


class EngineMoves:
    """`OrderMoves` on the engine as it is (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def start_delivery(self, order_id: str) -> str | None:
        order = await self.engine.get_order(order_id)
        if order is None:
            return "missing"
        return None if order.status in DELIVERABLE else order.status

    async def confirm_delivery(self, order_id: str) -> None:
        return None

    async def fail_delivery(self, order_id: str, reason: str) -> None:
        return None


__all__ = ["EngineMoves", "OrderMoves"]
