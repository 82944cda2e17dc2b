"""Schemathesis hooks for the suite's run (SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks).

They keep schema-valid requests valid where JSON Schema cannot say what the
server requires (flashsale/api/openapi_exact.py says what it can):

- a serial range is ``[low, high]`` with low <= high and at most MAX_TOTAL serials;
- a listing's ``cursor`` is a value the server gave out (its ``Link`` header),
  not any string of the right alphabet;
- a sale's ``end_at`` comes after its ``start_at`` (and, for a live sale, after now);
- an Idempotency-Key sent with another body is refused (422, by design): a
  positive case's key is derived from its path and body (the same request
  replays, another one never reuses a key);
- an integer is sent as a JSON integer (``1``, not ``1.0``: JSON Schema counts
  ``1.0`` as an integer, the server's strict decoding does not);
- a cart names each sale once (with its quantity) and holds at most
  MAX_CART_SERIALS serials in all: JSON Schema's ``uniqueItems`` compares whole items,
  and no keyword sums a field over them.

Only positive cases are touched: a negative case keeps the violation it was made for.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import schemathesis

from flashsale.engine.models import MAX_TOTAL
from flashsale.orders.models import MAX_CART_SERIALS

KIND = "add_serials must be of the kind the sale was created with"
LATE = "2999-01-01T00:00:00Z"  # after any start_at below, and after now
EARLY = "2998-01-01T00:00:00Z"


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


def _fix_range(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    bounds = spec.get("range")
    if isinstance(bounds, list) and len(bounds) == 2 and all(type(b) is int for b in bounds):
        low, high = sorted(bounds)
        spec["range"] = [low, min(high, low + MAX_TOTAL - 1)]


def _once_per_sale(items: Any) -> None:
    if not isinstance(items, list):
        return
    kept, seen = [], set()
    for item in items:
        sale = item.get("sale_id") if isinstance(item, dict) else None
        if sale is not None and sale in seen:
            continue
        if sale is not None:
            seen.add(sale)
        kept.append(item)
    room, capped = MAX_CART_SERIALS, []
    for item in kept:
        if isinstance(item, dict) and type(item.get("quantity", 1)) is int:
            if room < 1:
                continue
            item["quantity"] = min(item.get("quantity", 1), room)
            room -= item["quantity"]
        capped.append(item)
    items[:] = capped


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if not case.meta or not case.meta.generation.mode.is_positive:
        return
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)
    if isinstance(case.body, dict):
        case.body = _integers(case.body)
        _fix_range(case.body.get("serials"))
        _fix_range(case.body.get("add_serials"))
        _once_per_sale(case.body.get("items"))
        if isinstance(case.body.get("end_at"), str):
            case.body["end_at"] = LATE
            if isinstance(case.body.get("start_at"), str):
                case.body["start_at"] = min(case.body["start_at"], EARLY)
    for name in list(case.headers or {}):
        if name.lower() == "idempotency-key":
            request = json.dumps([case.formatted_path, case.body], sort_keys=True, default=str)
            case.headers[name] = "st-" + hashlib.sha256(request.encode()).hexdigest()[:32]


@schemathesis.hook
def filter_failure(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
    """The one refusal that depends on the sale's state and that a client cannot see in
    the schema: serials added in the other kind than the sale's (a range to a list
    sale). Any other failure is kept."""
    if response is None or response.status_code != 422:
        return True
    return KIND.encode() not in response.content  # bytes: an evidence file is not text
