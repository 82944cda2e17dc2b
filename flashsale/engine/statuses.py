"""The one vocabulary of order statuses, and which of them hold a serial or count as sold.

Every layer uses these sets: the Lua scripts move orders between the statuses,
the write-behind and the audit count them, PostgreSQL's live-order indexes
mirror ``HOLDS_SERIAL`` (a test compares them with ``store/schema.sql``).

    pending_payment ──paid──> paid ──cancel before delivery──> refund_pending
          │                    │                     approved ──> refunded
          ├──timeout──> expired│                     rejected ──> paid
          └──cancel───> cancelled
                               └──mint signed──> delivering ──confirmed──> delivered
                                   (gave up: back to paid) <──┘                │
                                            completed <──buyer, or the window passed
    delivered | completed ──after-sales ticket approved, money back──> refunded
        (refund_delivered: the token stays with the buyer, so the serial never returns to
        the pool and stays in the sale's sold, and the order stays in its buyer's and
        address's limits; the meta's ``kept`` counts these orders)
"""

from __future__ import annotations

from typing import Final, Literal, get_args

OrderStatus = Literal[
    "pending_payment",
    "paid",
    "expired",
    "cancelled",
    "refund_pending",
    "refunded",
    "delivering",
    "delivered",
    "completed",
]
ALL: Final = frozenset(get_args(OrderStatus))

RESERVED: Final = frozenset({"pending_payment"})
"""Counted in the sale's ``reserved``: the serial waits for its payment."""
SOLD: Final = frozenset({"paid", "delivering", "delivered", "completed", "refund_pending"})
"""Counted in the sale's ``sold``; refund_pending keeps its serial until an operator decides."""
HOLDS_SERIAL: Final = RESERVED | SOLD
"""Live orders: each holds its serial and counts toward its buyer's and address's limits."""
RELEASED: Final = frozenset({"expired", "cancelled", "refunded"})
"""Final statuses. The serial went back to the pool, except for an order refunded after
delivery: its token was minted, so it stays sold (``kept``) and in its buyer's limit."""
CANCELLABLE: Final = frozenset({"pending_payment", "paid"})
"""A buyer or an operator may cancel: pending (released at once) or paid (refund for review)."""
PAYMENT_KEPT: Final = frozenset(
    {"paid", "delivering", "delivered", "completed", "refund_pending", "refunded"}
)
"""Orders that were paid: their kept payment is theirs (refunded ones through a refund)."""
PAID: Final = frozenset({"paid", "delivering", "delivered", "completed"})
"""Paid and not being refunded: the money is the sale's."""
IN_DELIVERY: Final = frozenset({"delivering", "delivered", "completed"})
"""Delivery started: no cancellation (409 order_in_delivery / order_delivered)."""

assert HOLDS_SERIAL | RELEASED == ALL and not HOLDS_SERIAL & RELEASED
