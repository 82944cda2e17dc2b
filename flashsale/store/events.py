"""Decoding of the sale stream's entries (written by the Lua scripts, lua/includes/order.lua).

An order event is one field: its name is the event type, its value the packed
order record (``OrderRecord``), the event's time its ``updated_ms``. Sale
events, and order events written before packed records (a stream not yet
drained at the upgrade), are ``type``/field pairs.

Anything that does not decode is a poison entry: the consumer never acknowledges
it, and after N deliveries it goes to the dead-letter stream with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from flashsale.engine import statuses
from flashsale.engine.codec import text
from flashsale.engine.models import FAR_FUTURE_MS, ORDER_FIELDS, OrderRecord, decode_record

# Every event type the order scripts emit (lua/*.lua, ``emit_order``). The refund
# transitions (Engine.request_refund, refund, reject_refund): refund_requested
# (paid -> refund_pending), refunded (-> refunded), refund_rejected (-> paid again);
# refunded_after_delivery (Engine.refund_delivered: delivered | completed -> refunded).
ORDER_EVENTS = frozenset(
    {
        "purchased",
        "cancelled",
        "expired",
        "paid",
        "delivery_started",
        "delivery_failed",
        "delivered",
        "completed",
        "refund_requested",
        "refunded",
        "refund_rejected",
        "refunded_after_delivery",
    }
)
SALE_EVENTS = frozenset({"sale_created", "sale_tuned"})
# fields of a sale event that are settings (the rest describe the event itself)
_SALE_META = frozenset({"type", "at_ms", "sale_id", "actor", "version", "updated_ms", "added"})
_SALE_SETTINGS = frozenset(
    {
        "name",
        "status",
        "start_ms",
        "end_ms",
        "per_user_limit",
        "per_ip_limit",
        "timeout_ms",
        "price_cents",
        "currency",
        "assignment",
        "commitment",
        "total",
    }
)
_INT_SETTINGS = frozenset(
    {
        "start_ms",
        "end_ms",
        "per_user_limit",
        "peak_user_limit",
        "per_ip_limit",
        "timeout_ms",
        "price_cents",
        "total",
        "after_sales_ms",
    }
)


# order fields a script leaves out of the event when empty
_OPTIONAL = frozenset({"payment_id", "reason", "draw", "ip"})


class PoisonEntry(ValueError):
    """The entry cannot be decoded: retrying will not help."""


@dataclass(frozen=True, slots=True)
class OrderEvent:
    stream_id: str
    type: str
    at_ms: int
    order_id: str
    sale_id: str
    user_id: str
    serial: str
    serial_kind: str
    status: str
    version: int
    created_ms: int
    expires_ms: int
    updated_ms: int
    price_cents: int
    currency: str
    payment_id: str | None
    reason: str | None
    draw: int | None
    ip: str | None

    @property
    def live(self) -> bool:
        return self.status in statuses.HOLDS_SERIAL


@dataclass(frozen=True, slots=True)
class SaleEvent:
    stream_id: str
    type: str
    at_ms: int
    sale_id: str
    version: int
    actor: str | None
    changes: dict[str, Any]

    def changes_json(self) -> str:
        return json.dumps(self.changes, sort_keys=True)

    def repaired(self) -> SaleEvent | None:
        """This event with text PostgreSQL cannot store (NUL) replaced by U+FFFD; None when
        there is none (the refusal has another cause)."""

        def fix(value: Any) -> Any:
            return value.replace("\x00", "\ufffd") if isinstance(value, str) else value

        changes = {k: fix(v) for k, v in self.changes.items()}
        actor = fix(self.actor)
        if changes == self.changes and actor == self.actor:
            return None
        return SaleEvent(
            self.stream_id, self.type, self.at_ms, self.sale_id, self.version, actor, changes
        )


Event = OrderEvent | SaleEvent


def int_or(value: Any, default: int = 0) -> int:
    """A Redis reply as an int; ``default`` when the field is missing or empty."""
    return int(value) if value not in (None, b"", "") else default


def _int(fields: dict[str, str], name: str) -> int:
    raw = fields.get(name)
    if raw is None:
        raise PoisonEntry(f"field {name} missing")
    try:
        return int(raw)
    except ValueError:
        raise PoisonEntry(f"field {name} is not an integer: {raw[:40]!r}") from None


def readable(raw: dict[Any, Any]) -> dict[str, Any]:
    """A stream entry as JSON-able data, whatever it holds (a dead letter's payload):
    a packed record becomes its fields, bytes that are not UTF-8 their hex."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        if key in ORDER_EVENTS and len(raw) == 1:
            try:
                record = msgspec.msgpack.decode(value)
                if isinstance(record, list):
                    out["type"] = key
                    out.update(zip((*ORDER_FIELDS, "fingerprint"), record, strict=False))
                    continue
            except msgspec.DecodeError:
                pass
        try:
            out[key] = value.decode() if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            out[key] = {"hex": value.hex()}
    return out


def decode(sale_id: str, stream_id: str, raw: dict[Any, Any]) -> Event:
    """One stream entry as an event of ``sale_id``'s stream, or PoisonEntry."""
    if len(raw) == 1:
        ((name, value),) = raw.items()
        if text(name) in ORDER_EVENTS:
            return _packed_order_event(sale_id, stream_id, text(name), value)
    try:  # the consumer reads bytes: the fast path
        fields = {k.decode(): v.decode() for k, v in raw.items()}
    except AttributeError:
        fields = {text(k): text(v) for k, v in raw.items()}
    kind = fields.get("type")
    if kind in SALE_EVENTS:
        return _sale_event(sale_id, stream_id, kind, fields)
    if kind in ORDER_EVENTS:
        return _order_event(sale_id, stream_id, kind, fields)
    raise PoisonEntry(f"unknown event type {kind!r}")


def _sale_event(sale_id: str, stream_id: str, kind: str, f: dict[str, str]) -> SaleEvent:
    if f.get("sale_id") != sale_id:
        raise PoisonEntry(f"sale_id {f.get('sale_id')!r} in the stream of {sale_id!r}")
    version = _int(f, "version")
    at_ms = _int(f, "at_ms")
    changes: dict[str, Any] = {}
    for name, value in f.items():
        if name in _SALE_META:
            continue
        # a setting this consumer does not know yet is kept as text, never refused
        changes[name] = _int(f, name) if name in _INT_SETTINGS else value
    if kind == "sale_created":
        missing = _SALE_SETTINGS - {"commitment"} - changes.keys()
        if missing or version != 1:
            raise PoisonEntry(f"sale_created without {sorted(missing)} or version {version}")
        if changes["end_ms"] > FAR_FUTURE_MS:
            changes["end_ms"] = FAR_FUTURE_MS
    elif version < 2:
        raise PoisonEntry(f"sale_tuned with version {version}")
    return SaleEvent(stream_id, kind, at_ms, sale_id, version, f.get("actor"), changes)


def _packed_order_event(sale_id: str, stream_id: str, kind: str, value: Any) -> OrderEvent:
    try:
        r: OrderRecord = decode_record(value if isinstance(value, bytes) else text(value).encode())
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PoisonEntry(f"order record does not decode: {exc}") from None
    _check_order(sale_id, r.order_id, r.sale_id, r.status, r.serial_kind, r.serial, r.user_id)
    if r.version < 1:
        raise PoisonEntry(f"version {r.version}")
    return OrderEvent(
        stream_id=stream_id,
        type=kind,
        at_ms=r.updated_ms,
        order_id=r.order_id,
        sale_id=sale_id,
        user_id=r.user_id,
        serial=r.serial,
        serial_kind=r.serial_kind,
        status=r.status,
        version=r.version,
        created_ms=r.created_ms,
        expires_ms=r.expires_ms,
        updated_ms=r.updated_ms,
        price_cents=r.price_cents,
        currency=r.currency,
        payment_id=r.payment_id or None,
        reason=r.reason or None,
        draw=None if r.draw < 0 else r.draw,
        ip=r.ip or None,
    )


def _check_order(
    sale_id: str, order_id: str, of_sale: str, status: str, kind: str, serial: str, user: str
) -> None:
    if of_sale != sale_id or not order_id.startswith(sale_id + "."):
        raise PoisonEntry(f"order {order_id!r} in the stream of {sale_id!r}")
    if status not in statuses.ALL:
        raise PoisonEntry(f"unknown status {status!r}")
    if kind not in ("r", "l") or not serial or not user:
        raise PoisonEntry("order without serial or buyer")


def _order_event(sale_id: str, stream_id: str, kind: str, f: dict[str, str]) -> OrderEvent:
    """An order event in the form before packed records (fields, ``type`` and ``at_ms``)."""
    missing = [name for name in ORDER_FIELDS if name not in f and name not in _OPTIONAL]
    if missing:
        raise PoisonEntry(f"order event without {missing}")
    _check_order(
        sale_id,
        f["order_id"],
        f["sale_id"],
        f["status"],
        f["serial_kind"],
        f["serial"],
        f["user_id"],
    )
    version = _int(f, "version")
    if version < 1:
        raise PoisonEntry(f"version {version}")
    for name in _OPTIONAL:  # the scripts leave empty fields out of the event
        f.setdefault(name, "")
    draw = _int(f, "draw") if f["draw"] not in ("", "-1") else None
    return OrderEvent(
        stream_id=stream_id,
        type=kind,
        at_ms=_int(f, "at_ms"),
        order_id=f["order_id"],
        sale_id=sale_id,
        user_id=f["user_id"],
        serial=f["serial"],
        serial_kind=f["serial_kind"],
        status=f["status"],
        version=version,
        created_ms=_int(f, "created_ms"),
        expires_ms=_int(f, "expires_ms"),
        updated_ms=_int(f, "updated_ms"),
        price_cents=_int(f, "price_cents"),
        currency=f["currency"],
        payment_id=f["payment_id"] or None,
        reason=f["reason"] or None,
        draw=draw,
        ip=f["ip"] or None,
    )
