"""What the API shows of delivery: a sale's contract, an order's delivery.

Read from PostgreSQL only (the API never waits for the chain): confirmations
count against the newest block the deliverer saw (``chain_heads``).
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

from flashsale.chain.addresses import address_of
from flashsale.engine.models import Order
from flashsale.store.queries import Queries

q = Queries("flashsale.chain")

DeliveryStatus = Literal["awaiting_address", "submitted", "confirmed", "failed"]
# queued (about to be sent) reads as submitted, with no transaction yet
_SHOWN: dict[str, DeliveryStatus] = {
    "awaiting_address": "awaiting_address",
    "queued": "submitted",
    "submitted": "submitted",
    "confirmed": "confirmed",
    "failed": "failed",
}


class ChainInfo(Struct, kw_only=True):
    chain_id: int
    contract: str
    """The sale's ERC-721 contract, EIP-55."""


class Delivery(Struct, kw_only=True):
    status: DeliveryStatus
    address: str | None
    """The buyer's address the token goes (or went) to, EIP-55."""
    token_id: str | None
    """uint256 as a decimal string: the serial (range sale) or its list position (list sale)."""
    tx_hash: str | None
    """The mint transaction (the version that landed, once mined)."""
    confirmations: int
    """head − the transaction's block + 1; 0 until mined."""


async def sale_chain(pool: Any, sale_id: str) -> ChainInfo | None:
    row = await pool.fetchrow(q("deployed_contract"), sale_id)
    return None if row is None else ChainInfo(chain_id=int(row[0]), contract=str(row[1]))


async def delivery_of(pool: Any, order: Order) -> Delivery:
    """The delivery of a paid order (one the deliverer has not picked up yet included)."""
    row = await pool.fetchrow(q("delivery_view"), order.order_id)
    if row is None or row["status"] == "cancelled":
        address = await address_of(pool, order.user_id)
        token = str(order.serial) if isinstance(order.serial, int) else None
        status: DeliveryStatus = "submitted" if address else "awaiting_address"
        return Delivery(
            status=status, address=address, token_id=token, tx_hash=None, confirmations=0
        )
    block, head = row["block_number"], row["head"]
    confirmations = max(0, head - block + 1) if block is not None and head is not None else 0
    return Delivery(
        status=_SHOWN[row["status"]],
        address=row["address"],
        token_id=str(int(row["token_id"])),
        tx_hash=row["mined_hash"] or row["tx_hash"],
        confirmations=confirmations,
    )


__all__ = ["ChainInfo", "Delivery", "DeliveryStatus", "delivery_of", "sale_chain"]
