"""Make the OpenAPI document say exactly what the server does.

Litestar builds the document from the handlers' types; some of what the
server enforces does not reach it that way. At start-up (``exact``) the
document Litestar caches is completed in place, once:

- a body the server reads with unknown fields refused (a msgspec Struct with
  ``forbid_unknown_fields``) declares ``additionalProperties: false``;
- a fixed-length array (a tuple: ``add_serials.range``) declares
  ``minItems``/``maxItems``, and its items the bounds of their type;
- the rules a Struct checks in ``__post_init__`` that JSON Schema can say
  (``SHAPES``): one of ``range`` or ``list``, a method's required field;
- a header the server requires is ``required`` (Idempotency-Key of a wallet
  credit; the server answers 428 without it);
- a body the server may go without (``OPTIONAL_BODIES``: a decision's note) is not
  ``required``;
- an answer of file bytes names every media type it can have (``FILE_ANSWERS``);
- OpenAPI links chain create sale -> purchase -> pay, read, cancel, so a
  stateful client (schemathesis' stateful phase) walks the flow.

What no JSON Schema can say (a range's low bound at most its high bound, a
cursor being one the server gave out) is in docs/design.md and in the
schemathesis hooks the suite runs with (tests/api/schemathesis_hooks.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin

from flashsale.engine.models import MAX_SERIAL
from flashsale.orders.evidence import MEDIA_TYPES as EVIDENCE_MEDIA_TYPES
from flashsale.payments.setup import PROVIDER_URLS

Doc = dict[str, Any]

# Rules of __post_init__ that JSON Schema can state, by component name.
SHAPES: dict[str, Doc] = {
    "SerialsSpec": {
        "oneOf": [
            {"required": ["range"], "properties": {"range": {"type": "array"}}},
            {"required": ["list"], "properties": {"list": {"type": "array"}}},
        ],
    },
    "PaymentCreate": {
        "allOf": [
            {
                "if": {"properties": {"method": {"const": "provider"}}},
                "then": {
                    "required": ["provider"],
                    "properties": {"provider": {"type": "string", "enum": sorted(PROVIDER_URLS)}},
                },
            },
            {
                "if": {"properties": {"method": {"const": "balance"}}},
                "then": {
                    "required": ["payment_password"],
                    "properties": {"payment_password": {"type": "string"}},
                },
            },
        ],
    },
    "ChainAddressSet": {
        "properties": {
            "address": {
                "type": "string",
                "pattern": "^0x[0-9a-f]{40}$",
                "not": {"const": "0x" + "0" * 40},  # the zero address cannot own a token
                "description": "`0x` and 40 hex digits in lower case, or the same address in "
                "its EIP-55 mixed-case form (a wrong checksum is refused).",
            }
        },
    },
}
SERIAL_BOUND: Doc = {"type": "integer", "minimum": 0, "maximum": MAX_SERIAL}
SERIAL: Doc = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[\\x21-\\x7e]+$"}
REQUIRED_HEADERS = {("/v1/admin/wallets/{user_id}/credit", "post"): "Idempotency-Key"}


def _structs() -> dict[str, type[msgspec.Struct]]:
    """Every msgspec Struct class by name (the names Litestar gives components)."""
    found: dict[str, type[msgspec.Struct]] = {}
    todo: list[type[msgspec.Struct]] = [msgspec.Struct]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            todo.append(sub)
    return found


def _nodes(node: Any) -> Iterator[Doc]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


def _operation_ids(doc: Doc) -> dict[tuple[str, str], str]:
    return {
        (path, method): op["operationId"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def _link(operation_id: str, description: str, **parameters: str) -> Doc:
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def _links(doc: Doc) -> None:
    """create sale -> read, tune, audit, purchase; purchase -> pay, read, cancel the order;
    checkout -> its parent bill, read and paid; an after-sales ticket -> read, decided;
    the refund queue -> approve, reject."""
    ids = _operation_ids(doc)
    sale = "$response.body#/sale_id"
    order = "$response.body#/order_id"
    chains: dict[tuple[str, str, str], dict[str, Doc]] = {
        ("/v1/sales", "post", "201"): {
            "GetSale": _link(ids[("/v1/sales/{sale_id}", "get")], "Read it", sale_id=sale),
            "TuneSale": _link(ids[("/v1/sales/{sale_id}", "patch")], "Tune it", sale_id=sale),
            "AuditSale": _link(ids[("/v1/sales/{sale_id}/audit", "get")], "Audit", sale_id=sale),
            "Purchase": _link(
                ids[("/v1/sales/{sale_id}/purchase", "post")], "Buy one serial", sale_id=sale
            ),
        },
    }
    for status in ("201", "200"):
        chains[("/v1/sales/{sale_id}/purchase", "post", status)] = {
            "Pay": _link(
                ids[("/v1/orders/{order_id}/payments", "post")], "Pay the order", order_id=order
            ),
            "GetOrder": _link(ids[("/v1/orders/{order_id}", "get")], "Read it", order_id=order),
            "Payments": _link(
                ids[("/v1/orders/{order_id}/payments", "get")], "Its payments", order_id=order
            ),
            "Cancel": _link(
                ids[("/v1/orders/{order_id}/cancel", "post")], "Cancel it", order_id=order
            ),
        }
    refund = "$response.body#/0/refund_id"  # the first of the list
    chains[("/v1/admin/refunds", "get", "200")] = {
        "Approve": _link(
            ids[("/v1/admin/refunds/{refund_id}/approve", "post")], "Approve", refund_id=refund
        ),
        "Reject": _link(
            ids[("/v1/admin/refunds/{refund_id}/reject", "post")], "Reject", refund_id=refund
        ),
    }
    bill = "$response.body#/bill/bill_id"
    for status in ("201", "200"):
        chains[("/v1/checkouts", "post", status)] = {
            "GetBill": _link(ids[("/v1/bills/{bill_id}", "get")], "Its parent bill", bill_id=bill),
            "PayBill": _link(
                ids[("/v1/bills/{bill_id}/payments", "post")], "Pay the parent bill", bill_id=bill
            ),
        }
    ticket = "$response.body#/ticket_id"
    chains[("/v1/orders/{order_id}/after-sales", "post", "201")] = {
        "GetTicket": _link(
            ids[("/v1/after-sales/{ticket_id}", "get")], "Read it", ticket_id=ticket
        ),
        "ApproveTicket": _link(
            ids[("/v1/admin/after-sales/{ticket_id}/approve", "post")], "Approve", ticket_id=ticket
        ),
        "RejectTicket": _link(
            ids[("/v1/admin/after-sales/{ticket_id}/reject", "post")], "Reject", ticket_id=ticket
        ),
    }
    for (path, method, status), links in chains.items():
        response = doc["paths"][path][method]["responses"].get(status)
        if response is not None:
            response.setdefault("links", {}).update(links)


# operations whose body is optional (``data: ... | None = None``): Litestar marks it required
OPTIONAL_BODIES = (
    ("/v1/admin/refunds/{refund_id}/approve", "post"),
    ("/v1/admin/refunds/{refund_id}/reject", "post"),
    ("/v1/admin/after-sales/{ticket_id}/approve", "post"),
    ("/v1/admin/after-sales/{ticket_id}/reject", "post"),
)


# answers that are a stored file's bytes, in any of the media types it may have
FILE_ANSWERS = {
    ("/v1/after-sales/{ticket_id}/evidence/{evidence_id}", "get"): EVIDENCE_MEDIA_TYPES,
}


def make_exact(doc: Doc) -> Doc:
    """Complete Litestar's document in place (see the module docstring); returns it."""
    schemas: dict[str, Doc] = doc.get("components", {}).get("schemas", {})
    structs = _structs()
    for name, schema in schemas.items():
        struct = structs.get(name)
        if struct is not None and struct.__struct_config__.forbid_unknown_fields:
            schema["additionalProperties"] = False
        for key, value in SHAPES.get(name, {}).items():
            if key == "properties":
                for field, extra in value.items():
                    schema["properties"][field] = {**schema["properties"][field], **extra}
            else:
                schema[key] = value
    for node in _nodes(schemas):
        items = node.get("prefixItems")
        if isinstance(items, list) and "minItems" not in node:
            node["minItems"] = node["maxItems"] = len(items)
    serials = schemas.get("SerialsSpec", {}).get("properties", {})
    for variant in serials.get("range", {}).get("oneOf", []):
        if "prefixItems" in variant:
            variant["prefixItems"] = [dict(SERIAL_BOUND), dict(SERIAL_BOUND)]
    for variant in serials.get("list", {}).get("oneOf", []):
        if variant.get("type") == "array":
            variant["uniqueItems"] = True  # the same serial twice is refused
            variant["items"] = dict(SERIAL)
    for (path, method), header in REQUIRED_HEADERS.items():
        for parameter in doc["paths"][path][method].get("parameters", []):
            if parameter["in"] == "header" and parameter["name"] == header:
                parameter["required"] = True
    for path, method in OPTIONAL_BODIES:
        body = doc["paths"].get(path, {}).get(method, {}).get("requestBody")
        if body is not None:
            body["required"] = False
    for (path, method), media_types in FILE_ANSWERS.items():
        answer = doc["paths"].get(path, {}).get(method, {}).get("responses", {}).get("200")
        if answer is not None:
            binary = {"schema": {"type": "string", "format": "binary"}}
            answer["content"] = {media_type: dict(binary) for media_type in media_types}
    _links(doc)
    return doc


def exact(app: Litestar) -> None:
    """Start-up hook: fix the document every ``/schema`` answer is rendered from."""
    make_exact(app.plugins.get(OpenAPIPlugin).provide_openapi_schema())
