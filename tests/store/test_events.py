"""Decoding stream entries: the packed form the scripts write, and the form before it
(entries still in a stream at the upgrade). Pure unit tests: no service needed."""

from __future__ import annotations

import msgspec
import pytest

from flashsale.engine.models import OrderRecord
from flashsale.store.events import OrderEvent, PoisonEntry, decode, readable

RECORD = OrderRecord(
    "s1.0123456789abcdef0123", "s1", "u1", "7", "r", "paid", 2, 1000, 61000, 2000,
    500, "CNY", "pay-1", "", 6, "10.0.0.1", "fp",
)  # fmt: skip


def test_a_packed_order_event_decodes() -> None:
    event = decode("s1", "1-0", {b"paid": msgspec.msgpack.encode(RECORD)})
    assert isinstance(event, OrderEvent)
    assert (event.type, event.at_ms, event.status, event.version) == ("paid", 2000, "paid", 2)
    assert (event.payment_id, event.reason, event.draw, event.ip) == ("pay-1", None, 6, "10.0.0.1")


def test_an_order_event_in_the_old_form_still_decodes() -> None:
    fields = {
        "type": "purchased", "at_ms": "1000", "order_id": RECORD.order_id, "sale_id": "s1",
        "user_id": "u1", "serial": "7", "serial_kind": "r", "status": "pending_payment",
        "version": "1", "created_ms": "1000", "expires_ms": "61000", "updated_ms": "1000",
        "price_cents": "500", "currency": "CNY", "draw": "-1",
    }  # fmt: skip
    event = decode("s1", "1-0", {k.encode(): v.encode() for k, v in fields.items()})
    assert isinstance(event, OrderEvent) and event.draw is None and event.payment_id is None


@pytest.mark.parametrize(
    "raw",
    [
        {b"paid": b"\xc1 not msgpack"},
        {b"paid": msgspec.msgpack.encode(["too", "short"])},
        {b"paid": msgspec.msgpack.encode(msgspec.structs.replace(RECORD, sale_id="s2"))},
        {b"paid": msgspec.msgpack.encode(msgspec.structs.replace(RECORD, status="lost"))},
    ],
)
def test_a_bad_packed_event_is_poison(raw: dict[bytes, bytes]) -> None:
    with pytest.raises(PoisonEntry):
        decode("s1", "1-0", raw)


def test_readable_shows_a_packed_record_field_by_field() -> None:
    shown = readable({b"paid": msgspec.msgpack.encode(RECORD)})
    assert shown["type"] == "paid" and shown["order_id"] == RECORD.order_id
    assert shown["fingerprint"] == "fp"
    assert readable({b"x": b"\xff"}) == {"x": {"hex": "ff"}}
