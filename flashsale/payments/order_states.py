"""Order transitions owned by the payment flow, one Lua script each.

- ``request_refund``: paid -> refund_pending (a paid order cancelled before delivery)
- ``refund``: refund_pending -> refunded (approved; the serial returns to the pool)
- ``reject_refund``: refund_pending -> paid (rejected; the buyer keeps the serial)

Scripts live next to the engine's in ``lua/`` (same layout, same includes) and
run through ``Engine.run_script``: the engine's auto-pipelined, cluster-routed
path (EVALSHA, loaded again on NOSCRIPT, Redis errors as ``EngineUnavailable``).
"""

from __future__ import annotations

from typing import Any

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.keys import sale_id_of_order
from flashsale.engine.models import Order, order_from_reply


def order_or_refusal(reply: list[Any]) -> tuple[Order, bool]:
    """The order of a transition reply and whether it was a replay (code 3)."""
    code = int(reply[0])
    if code == errors.Reply.ORDER_NOT_PENDING:
        order = order_from_reply(reply[2:])
        raise errors.OrderNotPending(f"order is {order.status}", status=order.status, order=order)
    if code < 0:
        raise errors.refusal(reply)
    return order_from_reply(reply[1:]), code == errors.Reply.ALREADY_DONE


async def request_refund(
    engine: Engine, order_id: str, *, user_id: str | None, reason: str
) -> tuple[Order, bool]:
    k = engine.keys(sale_id_of_order(order_id))
    reply = await engine.run_script(
        "request_refund",
        [k.events, k.order(order_id)],
        [order_id, user_id or "", engine.clock(), reason],
    )
    return order_or_refusal(reply)


async def refund(engine: Engine, order_id: str, *, reason: str) -> tuple[Order, bool]:
    k = engine.keys(sale_id_of_order(order_id))
    reply = await engine.run_script(
        "refund",
        [k.meta, k.buyers, k.ips, k.returned, k.events, k.order(order_id)],
        [order_id, engine.clock(), reason],
    )
    return order_or_refusal(reply)


async def reject_refund(engine: Engine, order_id: str, *, reason: str) -> tuple[Order, bool]:
    k = engine.keys(sale_id_of_order(order_id))
    reply = await engine.run_script(
        "reject_refund",
        [k.events, k.order(order_id)],
        [order_id, engine.clock(), reason],
    )
    return order_or_refusal(reply)


async def pending_order_ids(engine: Engine, sale_id: str, *, limit: int = 10_000) -> list[str]:
    """Every pending order of a sale (the expiry schedule holds exactly those)."""
    members = await engine.redis.zrange(engine.keys(sale_id).expiry, 0, limit - 1)
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]
