"""Refusals of delivery on chain (the operator's redelivery)."""

from __future__ import annotations

from flashsale.errors import FlashsaleError


class DeliveryNotFound(FlashsaleError):
    code = "delivery_not_found"
    status = 404
    advice = (
        "The order has no delivery (not paid, or the deliverer has not picked it up yet): "
        "check the order id."
    )


class DeliveryNotGivenUp(FlashsaleError):
    code = "delivery_not_given_up"
    status = 409
    advice = (
        "Only a delivery the deliverer gave up (`failed`) is delivered again; this one is "
        "under way, done or cancelled (`detail` says which): read the order back."
    )


__all__ = ["DeliveryNotFound", "DeliveryNotGivenUp"]
