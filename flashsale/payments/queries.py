"""The payment flow's named SQL (``payments/queries/*.sql``), read by the store's loader."""

from __future__ import annotations

from flashsale.store.queries import Queries

q = Queries("flashsale.payments")
