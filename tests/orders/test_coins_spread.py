"""The spread of a checkout's coins over its orders (largest remainder, exact sum), and the
audit of their return (pure functions: no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashsale.payments.coins import coins_given_back, spread


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=20), st.data())
def test_shares_sum_exactly_and_stay_within_each_price(
    prices: list[int], data: st.DataObject
) -> None:
    coins = data.draw(st.integers(0, sum(prices)))
    shares = spread(coins, prices)
    assert sum(shares) == coins
    assert all(0 <= share <= price for share, price in zip(shares, prices, strict=True))
    total = sum(prices)
    if total:  # proportional: no share is a whole cent off its exact quota
        assert all(abs(s * total - coins * p) < total for s, p in zip(shares, prices, strict=True))


def test_ties_go_to_the_earlier_order() -> None:
    assert spread(500, [1000, 1000, 1000]) == [167, 167, 166]
    assert spread(0, [0, 0]) == [0, 0]


def test_more_coins_than_goods_is_refused() -> None:
    with pytest.raises(ValueError):
        spread(11, [5, 5])


def test_the_audit_names_coins_not_given_back_or_given_back_too_early() -> None:
    old = datetime.now(UTC) - timedelta(minutes=5)
    rows = [
        {"order_id": "s.1", "coins_cents": 50, "returned": False},
        {"order_id": "s.2", "coins_cents": 60, "returned": True},
        {"order_id": "s.3", "coins_cents": 70, "returned": True},
        {"order_id": "s.4", "coins_cents": 80, "returned": False},
        {"order_id": "s.5", "coins_cents": 90, "returned": False},
    ]
    orders = {
        "s.1": {"status": "expired", "updated_at": old},
        "s.2": {"status": "paid", "updated_at": old},
        "s.3": {"status": "refunded", "updated_at": old},
        "s.4": {"status": "cancelled", "updated_at": datetime.now(UTC)},  # within the grace
        "s.5": {"status": "paid", "updated_at": old},
    }
    found = coins_given_back(rows, orders)
    assert len(found) == 2
    assert "s.1 is expired" in found[0] and "s.2 is paid yet" in found[1]
