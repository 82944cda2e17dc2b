"""The operator's side of deliveries the deliverer gave up (``failed``: a mint that
reverted three times, a token found with another owner, a token another order holds).

Such an order is back to ``paid`` with its delivery ``failed`` and an alert; nothing
picks it up again by itself (the cause wants a look first). ``given_up`` lists them,
``redeliver`` queues one again on an operator's word: the deliverer then checks the
chain before minting (a token already the buyer's is delivered, never minted twice;
one with another owner fails again) and moves the order to ``delivering`` as for a
first mint. Used by ``POST /v1/admin/orders/{id}/redeliver`` and ``flashsale deliver
--retry``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct

from flashsale.chain.errors import DeliveryNotFound, DeliveryNotGivenUp
from flashsale.store.queries import Queries

q = Queries("flashsale.chain")


class GivenUp(Struct, kw_only=True):
    """A delivery the deliverer gave up."""

    order_id: str
    sale_id: str
    user_id: str
    token_id: str
    """uint256 as a decimal string."""
    reason: str | None
    """Why it was given up (the alert of the same time says more)."""
    attempts: int
    """Mint transactions signed for it."""
    given_up_at: datetime


class Redelivery(Struct, kw_only=True):
    order_id: str
    status: str
    """``queued`` (the deliverer mints it next) or ``awaiting_address``."""


async def given_up(pool: Any, limit: int = 100) -> list[GivenUp]:
    """Given-up deliveries, the latest first."""
    rows = await pool.fetch(q("given_up_deliveries"), limit)
    return [
        GivenUp(
            order_id=r["order_id"],
            sale_id=r["sale_id"],
            user_id=r["user_id"],
            token_id=str(int(r["token_id"])),
            reason=r["reason"],
            attempts=int(r["attempts"]),
            given_up_at=r["updated_at"],
        )
        for r in rows
    ]


async def redeliver(pool: Any, order_id: str, actor: str) -> Redelivery:
    """Queue a given-up delivery again (a conditional UPDATE: two operators, one requeue)."""
    status = await pool.fetchval(
        q("revive_delivery"), order_id, "failed", f"redelivery asked by {actor}"
    )
    if status is None:
        current = await pool.fetchval(q("delivery_status_of"), order_id)
        if current is None:
            raise DeliveryNotFound(f"order {order_id} has no delivery")
        raise DeliveryNotGivenUp(f"the delivery is {current}", status=current)
    return Redelivery(order_id=order_id, status=str(status))


__all__ = ["GivenUp", "Redelivery", "given_up", "redeliver"]
