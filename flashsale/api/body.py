"""The purchase body, read and validated by hand after authentication.

The purchase endpoint (and the bench's bare endpoint, so the comparison is
fair) read the raw body once and decode it with one prebuilt msgspec decoder:
one pass instead of Litestar's JSON-to-builtins-then-convert. The
Idempotency-Key fingerprint is taken over the parsed request in a canonical
form (``fingerprint``), never the raw bytes: ``{}``, ``{ }`` and an empty body
are one request. ``PurchaseOperation`` documents that body in the OpenAPI schema.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.enums import ParamType
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType, Operation, Parameter, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from flashsale.api.schemas import PurchaseBody

T = TypeVar("T")

_decode = msgspec.json.Decoder(PurchaseBody).decode
_strict_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


async def strict_body(request: Request[Any, Any, Any], shape: type[T]) -> T:
    """The body decoded strictly (JSON types as they are: ``"1"`` is not an int).

    Litestar converts ``data`` leniently; admin endpoints still declare ``data`` (that is
    what documents the body in OpenAPI) and then take this strict decoding of the same
    bytes, which refuses what the lenient one let through.
    """
    decoder = _strict_decoders.get(shape)
    if decoder is None:
        decoder = _strict_decoders[shape] = msgspec.json.Decoder(shape)
    try:
        value: T = decoder.decode(await request.body())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(
            f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": str(exc), "key": "data", "source": "body"}],
        ) from None
    return value


def fingerprint(parsed: Any) -> str:
    """The Idempotency-Key fingerprint of a parsed request: its canonical JSON, hashed.

    Keys sorted, no whitespace (msgspec's deterministic order), so a retry that
    formats the same request differently is the same request.
    """
    canonical = msgspec.json.encode(parsed, order="deterministic")
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


_EMPTY = PurchaseBody()


def decode_purchase_body(body: bytes) -> PurchaseBody:
    """Validate a purchase body: ``{}`` (an empty body counts as ``{}``)."""
    if not body:
        return _EMPTY
    try:
        return _decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(
            "the purchase body must be {}",
            extra=[{"message": str(exc), "key": "body", "source": "body"}],
        ) from None


@dataclass
class PurchaseOperation(Operation):
    """The OpenAPI operation of a handler that reads the purchase body (and headers) itself."""

    def __post_init__(self) -> None:
        if self.operation_id and "Purchase" in self.operation_id:
            self.parameters = [
                *(self.parameters or []),
                Parameter(
                    name="Idempotency-Key",
                    param_in=ParamType.HEADER,
                    required=False,
                    description="Same key and body: the first answer again (200). "
                    "Same key, different body: 422 idempotency_key_reused.",
                    schema=Schema(
                        type=OpenAPIType.STRING,
                        min_length=1,
                        max_length=255,
                        pattern=r"^[\x21-\x7e]+$",
                    ),
                ),
            ]
        empty_object: Any = Schema(
            type=OpenAPIType.OBJECT, properties={}, additional_properties=False
        )
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=empty_object)},
            required=False,
            description="`{}`: who buys comes from the token, what from the path.",
        )
