"""The purchase body, read and validated by hand after authentication.

The purchase endpoint (and the bench's bare endpoint, so the comparison is
fair) read the raw body once and decode it with one prebuilt msgspec decoder:
one pass instead of Litestar's JSON-to-builtins-then-convert, and the raw
bytes are at hand for the idempotency fingerprint. ``PurchaseOperation``
documents that body in the OpenAPI schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from flashsale.api.schemas import PurchaseBody
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

_decode = msgspec.json.Decoder(PurchaseBody).decode


def decode_purchase_body(body: bytes) -> None:
    """Validate a purchase body: ``{}`` (an empty body counts as ``{}``)."""
    if not body:
        return
    try:
        _decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(
            "the purchase body must be {}",
            extra=[{"message": str(exc), "key": "body", "source": "body"}],
        ) from None


@dataclass
class PurchaseOperation(Operation):
    """The OpenAPI operation of a handler that reads the purchase body itself."""

    def __post_init__(self) -> None:
        empty_object: Any = Schema(
            type=OpenAPIType.OBJECT, properties={}, additional_properties=False
        )
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=empty_object)},
            required=False,
            description="`{}`: who buys comes from the token, what from the path.",
        )
