"""One vocabulary of order statuses: the Python sets and PostgreSQL's schema agree."""

from __future__ import annotations

import re
from importlib import resources

from flashsale.engine import statuses


def _schema() -> str:
    return resources.files("flashsale.store").joinpath("schema.sql").read_text()


def _quoted(text: str) -> set[str]:
    return set(re.findall(r"'(\w+)'", text))


def test_the_orders_table_accepts_exactly_the_statuses() -> None:
    schema = _schema()
    check = re.search(r"status\s+text NOT NULL CHECK \(status IN \(([^)]*)\)", schema)
    assert check is not None
    assert _quoted(check.group(1)) == statuses.ALL


def test_live_order_indexes_cover_exactly_the_statuses_that_hold_a_serial() -> None:
    indexes = re.findall(r"CREATE UNIQUE INDEX orders_live_\w+[^;]*WHERE[^;]*;", _schema())
    assert len(indexes) == 2
    for index in indexes:
        assert _quoted(index) == statuses.HOLDS_SERIAL


def test_the_sets_partition_the_statuses() -> None:
    assert statuses.RESERVED | statuses.SOLD == statuses.HOLDS_SERIAL
    assert statuses.HOLDS_SERIAL.isdisjoint(statuses.RELEASED)
    assert statuses.CANCELLABLE <= statuses.HOLDS_SERIAL
