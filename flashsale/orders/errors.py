"""Refusals of checkouts, bills, coins and after-sales (one error tree: ``flashsale.errors``)."""

from __future__ import annotations

from flashsale.errors import FlashsaleError


class BillNotFound(FlashsaleError):
    code = "bill_not_found"
    status = 404
    advice = "No such bill for this buyer: use a `bill_id` from the checkout's answer."


class BillNotPayable(FlashsaleError):
    code = "bill_not_payable"
    status = 409
    advice = (
        "The bill is paid or closed, or one of its orders is no longer pending (expired, "
        "cancelled, its item changed): read the bill back; no money was kept."
    )


class BalanceRequired(FlashsaleError):
    code = "balance_required"
    status = 409
    advice = (
        "Coins cover the whole bill: pay it with `method: balance` and the payment password "
        "(someone else may be using the account)."
    )


class CoinsExceedGoods(FlashsaleError):
    code = "coins_exceed_goods"
    status = 409
    advice = (
        "`coins_cents` is more than the cart's goods at today's prices (the sales' prices, "
        "not the request, decide it): ask for at most the goods; nothing was bought."
    )


class OrderNotEligible(FlashsaleError):
    code = "order_not_eligible"
    status = 409
    advice = (
        "After-sales take delivered orders within the sale's after-sales window: cancel a "
        "paid order instead, or contact support past the window."
    )


class TicketAlreadyOpen(FlashsaleError):
    code = "ticket_already_open"
    status = 409
    advice = "The order has an open ticket (`ticket_id`): add to it after its decision."


class TicketNotFound(FlashsaleError):
    code = "ticket_not_found"
    status = 404
    advice = "Check the ticket id (and that the token is the buyer's or an admin's)."


class TicketAlreadyDecided(FlashsaleError):
    code = "ticket_already_decided"
    status = 409
    advice = "The ticket was decided the other way (`ticket_status`): read it back."


class SaleDelisted(FlashsaleError):
    code = "sale_delisted"
    status = 409
    advice = "The drop of this order is no longer sold: nothing to buy again."
