"""Every Redis key name flashsale uses is built here.

All keys of one sale share the hash tag ``{sale:<id>}``, so every script runs
inside one Redis Cluster slot and many sales spread over many shards.
"""

from __future__ import annotations

import hashlib
import zlib

PERSIST_GROUP = "persist"  # the write-behind's consumer group on every sale's event stream


class SaleKeys:
    """Key names of one sale, computed once (they sit on the purchase hot path)."""

    __slots__ = (
        "buyers",
        "claims",
        "completion",
        "creation",
        "events",
        "expiry",
        "fences",
        "idem_prefix",
        "ipholds",
        "ips",
        "items",
        "itemset",
        "meta",
        "namespace",
        "order_prefix",
        "orders",
        "payexp_prefix",
        "persist_dead",
        "persist_failures",
        "returned",
        "sale_id",
        "segments",
        "stats",
        "tag",
    )

    def __init__(self, namespace: str, sale_id: str) -> None:
        self.namespace = namespace
        self.sale_id = sale_id
        self.tag = tag = f"{namespace}:{{sale:{sale_id}}}"
        self.meta = f"{tag}:meta"  # hash: settings and counters
        self.segments = f"{tag}:segments"  # hash: serial segments
        self.items = f"{tag}:items"  # hash: explicit serials of list segments
        self.itemset = f"{tag}:itemset"  # set: explicit serials, to refuse duplicates
        self.buyers = f"{tag}:buyers"  # hash: "l:<user>" live orders, "h:<user>" released
        self.ips = f"{tag}:ips"  # hash: live orders per client address
        self.returned = f"{tag}:returned"  # list: released serials, sold first
        self.expiry = f"{tag}:expiry"  # zset: pending orders by payment deadline
        self.completion = f"{tag}:completion"  # zset: delivered orders by after-sales end
        self.events = f"{tag}:events"  # stream: every transition, for the write-behind
        self.orders = f"{tag}:orders"  # hash: order_id -> packed order (lua/includes/order.lua)
        self.order_prefix = f"{tag}:order:"  # + order_id: an order before 0.7 (engine/upgrade.py)
        self.idem_prefix = f"{tag}:idem:"  # + digest: order_id under an Idempotency-Key
        # outside the engine's scripts: the API, the write-behind, the payment timers
        self.stats: str = f"{tag}:stats"  # hash: purchase outcomes (created, rej:<code>, ...)
        self.persist_dead: str = f"{tag}:persist:dead"  # stream: write-behind dead letters
        self.persist_failures: str = f"{tag}:persist:failures"  # hash: stream id -> last failure
        self.payexp_prefix: str = f"{tag}:payexp:"  # + order_id: a timer's claim on an expiry
        # bucketed drops (engine/buckets.py): serials lent to another bucket, fenced order ids
        self.claims: str = f"{tag}:claims"  # hash: order_id -> packed claim (lua/take-5.lua)
        self.fences: str = f"{tag}:fences"  # hash: order_id -> ms, never placed here (fence-2)
        self.creation: str = f"{tag}:creation"  # string: creation token (begin_create-2)
        # hash: an address's count held for a purchase homed elsewhere (lua/ip_hold-3.lua)
        self.ipholds: str = f"{tag}:ipholds"

    def legacy_order(self, order_id: str) -> str:
        """The hash of one order in the form before packed records (engine/upgrade.py)."""
        return self.order_prefix + order_id

    def payment_expiry_claim(self, order_id: str) -> str:
        """SET NX PX lock a payment timer holds while it expires ``order_id``."""
        return self.payexp_prefix + order_id

    def idempotency(self, user_id: str, key: str) -> str:
        # hashed: user ids and client keys are arbitrary strings
        digest = hashlib.sha1(f"{user_id}\n{key}".encode()).hexdigest()
        return self.idem_prefix + digest

    def purchase_keys(self, idempotency_key: str | None = None) -> list[str]:
        """KEYS of purchase-10.lua in order (meta stands in for a missing idempotency key)."""
        return [
            self.meta,
            self.segments,
            self.items,
            self.buyers,
            self.ips,
            self.returned,
            self.expiry,
            self.events,
            self.orders,
            idempotency_key or self.meta,
        ]

    def all_fixed(self) -> list[str]:
        """The sale's keys that do not depend on an order or a request."""
        return [
            self.meta,
            self.segments,
            self.items,
            self.itemset,
            self.buyers,
            self.ips,
            self.returned,
            self.expiry,
            self.events,
            self.orders,
            self.completion,
        ]


def request_window(namespace: str, ip: str, second: int) -> str:
    """Per-address request counter of one second (the rate limit; outside any sale's slot)."""
    return f"{namespace}:iprate:{ip}:{second}"


def sales_registry(namespace: str) -> str:
    """Set of every sale id (outside any sale's slot: written after create)."""
    return f"{namespace}:sales"


LIVE_SUFFIX = 20  # hex digits after "<sale_id>." in an order id (lua/includes/live.lua)


def live_field(user_id: str) -> str:
    """The buyers-hash field of a buyer's live orders (their id suffixes, concatenated)."""
    return f"l:{user_id}"


def history_field(user_id: str) -> str:
    """The buyers-hash field of a buyer's released orders (same form)."""
    return f"h:{user_id}"


def order_ids_in(sale_id: str, suffixes: str) -> list[str]:
    """The order ids of a live or history field's value, oldest first."""
    return [
        f"{sale_id}.{suffixes[i : i + LIVE_SUFFIX]}" for i in range(0, len(suffixes), LIVE_SUFFIX)
    ]


def active_sales(namespace: str) -> str:
    """Set of the sales persist and timers work on: a sale enters at creation (and at any
    later transition), leaves once closed and drained (engine/active.py)."""
    return f"{namespace}:sales:active"


def active_sales_seeded(namespace: str) -> str:
    """Marker: the active set was seeded from the registry (a store from before it)."""
    return f"{namespace}:sales:active:seeded"


def housekeeping_queue(namespace: str) -> str:
    """Set of retired slots whose leftovers housekeeping deletes (engine/housekeeping.py):
    the IP holds of a finished bucketed drop. Outside any sale's slot, like the active set."""
    return f"{namespace}:sales:housekeep"


def creations(namespace: str) -> str:
    """Sorted set of a bucketed drop's creation attempts not known to have finished,
    ``"<sale_id> <token>"`` scored by when the token was drawn: housekeeping's index of
    where orphan buckets may be (engine/housekeeping.py)."""
    return f"{namespace}:sales:creating"


def sale_id_of_order(order_id: str) -> str:
    """Order ids are ``<slot>.<hash>`` and a slot is ``<sale_id>`` or ``<sale_id>.<bucket>``
    (sale ids have no dot): the sale is the id's first part."""
    return order_id.partition(".")[0]


def slot_of_order(order_id: str) -> str:
    """The slot (the sale, or one bucket of a bucketed sale) whose keys hold the order."""
    slot, _, _ = order_id.rpartition(".")
    return slot


MAX_BUCKETS = 16  # a bucketed drop's B: 1..16 (engine/buckets.py)


def bucket_slot(sale_id: str, bucket: int) -> str:
    """The slot name of bucket ``bucket``: bucket 0 is the sale itself (today's keys, so an
    unbucketed sale is unchanged), bucket b > 0 is ``<sale_id>.<b>`` (its own hash tag)."""
    return sale_id if bucket == 0 else f"{sale_id}.{bucket}"


def sale_of_slot(slot: str) -> str:
    """The sale a slot belongs to (the inverse of ``bucket_slot``)."""
    return slot.partition(".")[0]


def home_bucket(user_id: str, buckets: int) -> int:
    """A buyer's home bucket: a stable hash of the id (the same in every process and
    release), so the buyer's count and orders always live in one slot."""
    return zlib.crc32(user_id.encode()) % buckets if buckets > 1 else 0


def bench_peer_stock(namespace: str) -> str:
    """The featureless peer's whole state (bench/peer.py): one stock counter."""
    return f"{namespace}:peer:stock"
