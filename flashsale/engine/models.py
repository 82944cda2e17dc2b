"""Wire and engine shapes (msgspec), separate for create, update and read.

Field names are the public contract (docs/design.md#public-contract).
Unknown fields are refused, which is also what stops mass assignment.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from flashsale.engine.codec import text
from flashsale.engine.statuses import OrderStatus

SALE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# <sale_id>.<20 hex>, or <sale_id>.<bucket>.<20 hex> in a bucketed drop (engine/keys.py)
ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}(\.[1-9][0-9]?)?\.[0-9a-f]{20}$"
SALE_ID = re.compile(SALE_ID_PATTERN)
ORDER_ID = re.compile(ORDER_ID_PATTERN)
SaleId = Annotated[str, Meta(pattern=SALE_ID_PATTERN)]
MerchantId = Annotated[str, Meta(pattern=SALE_ID_PATTERN)]  # who sells a drop (bills split by it)
Serial = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
MAX_SERIAL = 10**12
MAX_TOTAL = 100_000_000
MAX_LIST = 1_000_000
FAR_FUTURE_MS = 253_402_300_799_000  # 9999-12-31: "no end" without a null in Redis


# Aliases defined outside SerialsSpec: its fields are named `range` and `list`.
SerialBound = Annotated[int, Meta(ge=0, le=MAX_SERIAL)]
SerialList = Annotated[list[Serial], Meta(min_length=1, max_length=MAX_LIST)]


class SerialsSpec(Struct, forbid_unknown_fields=True):
    """``{"range": [lo, hi]}`` (inclusive) or ``{"list": ["A-001", ...]}``."""

    range: tuple[SerialBound, SerialBound] | None = None
    list: SerialList | None = None

    def __post_init__(self) -> None:
        if (self.range is None) == (self.list is None):
            raise ValueError("give exactly one of `range` or `list`")
        if self.range is not None:
            lo, hi = self.range
            if hi < lo:
                raise ValueError("range must be [low, high] with low <= high")
            if hi - lo + 1 > MAX_TOTAL:
                raise ValueError(f"a range holds at most {MAX_TOTAL} serials")
        if self.list is not None and len(set(self.list)) != len(self.list):
            raise ValueError("list holds the same serial twice")

    @property
    def size(self) -> int:
        if self.range is not None:
            return self.range[1] - self.range[0] + 1
        assert self.list is not None
        return len(self.list)


class SaleCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    serials: SerialsSpec
    sale_id: SaleId | None = None
    assignment: Literal["sequential", "random"] = "sequential"
    per_user_limit: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    per_ip_limit: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    start_at: Annotated[datetime, Meta(tz=True)] | None = None
    end_at: Annotated[datetime, Meta(tz=True)] | None = None
    payment_timeout_s: Annotated[int, Meta(ge=1, le=86_400)] = 1800
    price_cents: Annotated[int, Meta(ge=0, le=10**12)] = 0
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] = "CNY"
    merchant_id: MerchantId = "platform"
    # how long a delivered order stays open to after-sales before it is completed
    after_sales_window_s: Annotated[int, Meta(ge=0, le=31_536_000)] = 604_800
    # a drop hotter than one Redis core: its serials spread over this many hash slots
    # (docs/design.md, "Bucketed drops"); keys.MAX_BUCKETS
    buckets: Annotated[int, Meta(ge=1, le=16)] = 1

    def __post_init__(self) -> None:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")


class SaleUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: every field optional; ``per_ip_limit: null`` turns the IP limit off."""

    status: Literal["open", "paused", "closed"] | UnsetType = UNSET
    end_at: Annotated[datetime, Meta(tz=True)] | UnsetType = UNSET
    per_user_limit: Annotated[int, Meta(ge=1, le=1_000_000)] | UnsetType = UNSET
    per_ip_limit: Annotated[int, Meta(ge=1, le=1000000)] | UnsetType | None = UNSET
    payment_timeout_s: Annotated[int, Meta(ge=1, le=86_400)] | UnsetType = UNSET
    add_serials: SerialsSpec | UnsetType = UNSET


class Sale(Struct, kw_only=True):
    sale_id: str
    name: str
    status: Literal["scheduled", "open", "paused", "closed", "sold_out"]
    total: int
    available: int
    reserved: int
    sold: int
    start_at: datetime
    end_at: datetime | None
    per_user_limit: int
    per_ip_limit: int | None
    payment_timeout_s: int
    price_cents: int
    currency: str
    assignment: Literal["sequential", "random"]
    merchant_id: str = "platform"
    assignment_commitment: str | None = None
    assignment_key: str | None = None
    created_at: datetime | None = None
    after_sales_window_s: int = 604_800
    buckets: int = 1
    tune_pending: bool = False
    """A bucketed drop whose last tune has not reached every bucket yet (it stopped
    midway): the settings shown are the sale's; the same tune again completes it."""


class Order(Struct, kw_only=True):
    order_id: str
    sale_id: str
    user_id: str
    serial: int | str
    status: OrderStatus
    version: int
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    price_cents: int
    currency: str
    payment_id: str | None = None
    reason: str | None = None
    draw: int | None = None  # n-th fresh draw from the pool; None when a released serial was resold


class Purchase(Struct, kw_only=True):
    order: Order
    replayed: bool


# Positional layout of every order reply; mirrors ORDER_FIELDS in lua/includes/order.lua.
ORDER_FIELDS = (
    "order_id",
    "sale_id",
    "user_id",
    "serial",
    "serial_kind",
    "status",
    "version",
    "created_ms",
    "expires_ms",
    "updated_ms",
    "price_cents",
    "currency",
    "payment_id",
    "reason",
    "draw",
    "ip",
)


class OrderRecord(Struct, array_like=True):
    """The packed order (lua/includes/order.lua): ORDER_FIELDS, then the request's
    fingerprint, as one msgpack array in the sale's orders hash and in its events."""

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
    payment_id: str
    reason: str
    draw: int
    ip: str
    fingerprint: str = ""

    def order(self) -> Order:
        return Order(
            order_id=self.order_id,
            sale_id=self.sale_id,
            user_id=self.user_id,
            serial=int(self.serial) if self.serial_kind == "r" else self.serial,
            status=self.status,  # type: ignore[arg-type]  # checked where decoded for storage
            version=self.version,
            created_at=ms_to_datetime(self.created_ms),
            expires_at=ms_to_datetime(self.expires_ms),
            updated_at=ms_to_datetime(self.updated_ms),
            price_cents=self.price_cents,
            currency=self.currency,
            payment_id=self.payment_id or None,
            reason=self.reason or None,
            draw=None if self.draw < 0 else self.draw,
        )


decode_record = msgspec.msgpack.Decoder(OrderRecord).decode


def order_from_record(packed: Any) -> Order:
    """An order from its packed record (bytes, as redis-py reads it)."""
    return decode_record(packed).order()


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def order_from_reply(values: list[Any]) -> Order:
    """Decode the ORDER_FIELDS part of a reply (str and int from scripts, bytes from HMGET)."""
    if isinstance(values[0], bytes):
        values = [v if v is None else text(v) for v in values]
    (
        order_id,
        sale_id,
        user_id,
        serial,
        serial_kind,
        status,
        version,
        created_ms,
        expires_ms,
        updated_ms,
        price_cents,
        currency,
        payment_id,
        reason,
        draw,
        _ip,
    ) = values
    return Order(
        order_id=order_id,
        sale_id=sale_id,
        user_id=user_id,
        serial=int(serial) if serial_kind == "r" else serial,
        status=status,
        version=int(version),
        created_at=ms_to_datetime(int(created_ms)),
        expires_at=ms_to_datetime(int(expires_ms)),
        updated_at=ms_to_datetime(int(updated_ms)),
        price_cents=int(price_cents),
        currency=currency,
        payment_id=payment_id or None,
        reason=reason or None,
        draw=None if draw in (None, "", "-1", -1) else int(draw),
    )


def sale_from_meta(meta: dict[str, str], now_ms: int) -> Sale:
    """The public view of a sale from its meta hash; status is derived, never stored stale."""
    total, reserved, sold = int(meta["total"]), int(meta["reserved"]), int(meta["sold"])
    available = total - reserved - sold
    start_ms, end_ms = int(meta["start_ms"]), int(meta["end_ms"])
    stored = meta["status"]
    status: Literal["scheduled", "open", "paused", "closed", "sold_out"]
    if stored == "closed" or now_ms >= end_ms:
        status = "closed"
    elif stored == "paused":
        status = "paused"
    elif stored != "open" or now_ms < start_ms:
        status = "scheduled"
    elif available <= 0:
        status = "sold_out"
    else:
        status = "open"
    random = meta["assignment"] == "random"
    ip_limit = int(meta["per_ip_limit"])
    return Sale(
        sale_id=meta["sale_id"],
        name=meta["name"],
        status=status,
        total=total,
        available=available,
        reserved=reserved,
        sold=sold,
        start_at=ms_to_datetime(start_ms),
        end_at=None if end_ms >= FAR_FUTURE_MS else ms_to_datetime(end_ms),
        per_user_limit=int(meta["per_user_limit"]),
        per_ip_limit=ip_limit or None,
        payment_timeout_s=int(meta["timeout_ms"]) // 1000,
        price_cents=int(meta["price_cents"]),
        currency=meta["currency"],
        assignment="random" if random else "sequential",
        merchant_id=meta.get("merchant_id") or "platform",  # sales made before merchants
        assignment_commitment=meta.get("commitment") if random else None,
        assignment_key=meta.get("perm_key") if random and status == "closed" else None,
        created_at=ms_to_datetime(int(meta["created_ms"])),
        after_sales_window_s=int(meta.get("after_sales_ms") or 604_800_000) // 1000,
        buckets=int(meta.get("buckets") or 1),
    )


decode_sale_create = msgspec.json.Decoder(SaleCreate).decode
