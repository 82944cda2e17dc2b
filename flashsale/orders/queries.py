"""The orders package's named SQL (``orders/queries/*.sql``), read by the store's loader."""

from __future__ import annotations

from flashsale.store.queries import Queries

q = Queries("flashsale.orders")
