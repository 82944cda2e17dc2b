"""Every Redis key name flashsale uses is built here.

All keys of one sale share the hash tag ``{sale:<id>}``, so every script runs
inside one Redis Cluster slot and many sales spread over many shards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SaleKeys:
    namespace: str
    sale_id: str

    @property
    def tag(self) -> str:
        return f"{self.namespace}:{{sale:{self.sale_id}}}"

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"

    @property
    def segments(self) -> str:
        return f"{self.tag}:segments"

    @property
    def items(self) -> str:
        return f"{self.tag}:items"

    @property
    def itemset(self) -> str:
        return f"{self.tag}:itemset"

    @property
    def buyers(self) -> str:
        return f"{self.tag}:buyers"

    @property
    def ips(self) -> str:
        return f"{self.tag}:ips"

    @property
    def returned(self) -> str:
        return f"{self.tag}:returned"

    @property
    def expiry(self) -> str:
        return f"{self.tag}:expiry"

    @property
    def events(self) -> str:
        return f"{self.tag}:events"

    @property
    def order_prefix(self) -> str:
        return f"{self.tag}:order:"

    def order(self, order_id: str) -> str:
        return self.order_prefix + order_id

    def idempotency(self, user_id: str, key: str) -> str:
        # hashed: user ids and client keys are arbitrary strings
        digest = hashlib.sha1(f"{user_id}\n{key}".encode()).hexdigest()
        return f"{self.tag}:idem:{digest}"

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
        ]


def sales_registry(namespace: str) -> str:
    """Set of every sale id (outside any sale's slot: written after create)."""
    return f"{namespace}:sales"


def sale_id_of_order(order_id: str) -> str:
    """Order ids are ``<sale_id>.<hash>``: the sale (and so the slot) is in the id."""
    sale_id, _, _ = order_id.rpartition(".")
    return sale_id
