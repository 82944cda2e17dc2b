"""The spread of a checkout's coins over its orders: largest remainder, exact sum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashsale.orders.coins import spread


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
