"""Wire shapes of checkouts and bills (field names are the contract: DESIGN "Orders after
the drop"). Unknown fields are refused, which also stops mass assignment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from flashsale.engine.models import SaleId
from flashsale.engine.statuses import OrderStatus

MAX_CART_SERIALS = 20  # serials in one checkout: every one is a script call
BillKind = Literal["parent", "merchant"]
BillStatus = Literal["open", "paid", "closed"]


class CheckoutItem(Struct, forbid_unknown_fields=True, kw_only=True):
    sale_id: SaleId
    quantity: Annotated[int, Meta(ge=1, le=MAX_CART_SERIALS)] = 1


class CheckoutCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """``{"items": [{"sale_id", "quantity"}], "coins_cents": 0}``."""

    items: Annotated[list[CheckoutItem], Meta(min_length=1, max_length=MAX_CART_SERIALS)]
    coins_cents: Annotated[int, Meta(ge=0, le=10**12)] = 0


class CheckoutOrder(Struct, kw_only=True):
    """An order of a checkout: the purchase fields plus its checkout, merchant and coins."""

    order_id: str
    sale_id: str
    serial: int | str
    status: OrderStatus
    expires_at: datetime
    price_cents: int
    currency: str
    checkout_id: str
    merchant_id: str
    coins_cents: int
    to_pay_cents: int


class Bill(Struct, kw_only=True):
    bill_id: str
    kind: BillKind
    status: BillStatus
    goods_cents: int
    coins_cents: int
    to_pay_cents: int
    currency: str
    order_ids: list[str]
    checkout_id: str
    merchant_id: str | None = None
    """The merchant of a merchant bill; none on the parent bill."""
    payment_id: str | None = None
    """The payment that paid the bill (one trade or one debit for all its orders)."""
    closed_reason: str | None = None


class SubOrder(Struct, kw_only=True):
    merchant_id: str
    order_ids: list[str]
    bill: Bill


class CheckoutOut(Struct, kw_only=True):
    checkout_id: str
    status: OrderStatus
    orders: list[CheckoutOrder]
    bill: Bill
    sub_orders: list[SubOrder]


def row_to_bill(row: Any) -> Bill:
    """A bill from its row (``bill_by_id``: with its ``order_ids``)."""
    return Bill(
        bill_id=row["bill_id"],
        kind=row["kind"],
        status=row["status"],
        goods_cents=int(row["goods_cents"]),
        coins_cents=int(row["coins_cents"]),
        to_pay_cents=int(row["to_pay_cents"]),
        currency=row["currency"],
        order_ids=list(row["order_ids"]),
        checkout_id=row["checkout_id"],
        merchant_id=row["merchant_id"],
        payment_id=row["payment_id"],
        closed_reason=row["closed_reason"],
    )


TicketStatus = Literal["open", "approved", "rejected"]


class Evidence(Struct, kw_only=True):
    evidence_id: str
    content_type: str
    bytes: int
    sha256: str


class Ticket(Struct, kw_only=True):
    """An after-sales ticket (DESIGN "Orders after the drop")."""

    ticket_id: str
    order_id: str
    status: TicketStatus
    reason: str
    evidence: list[Evidence]
    created_at: datetime
    user_id: str
    sale_id: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None
    refund_id: str | None = None
    """The refund an approval made (through the payment flow's refunds)."""


class TicketDecision(Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, Meta(max_length=2000, pattern=r"^[^\x00]*$")] | None = None
