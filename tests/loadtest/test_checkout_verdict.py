"""The checkout load test's cart invariants on hand-made records (a pure function)."""

from __future__ import annotations

from flashsale.loadtest.checkout_run import cart_violations


def _cart(buyer: str, orders: list[tuple[str, str, int]], **fields: object) -> dict[str, object]:
    return {
        "buyer": buyer,
        "asked": sorted(sale for _, sale, _ in orders),
        "checkout_id": f"co-{buyer}",
        "orders": [{"order_id": o, "sale_id": s, "coins_cents": c} for o, s, c in orders],
        **fields,
    }


def test_clean_carts_pass() -> None:
    carts = [
        _cart("u1", [("a.1", "a", 100), ("b.1", "b", 50)], paid="parent"),
        _cart("u2", [("a.2", "a", 0)]),
        {"buyer": "u3", "asked": ["a"], "coins_cents": 0, "refused": "sold_out"},
    ]
    statuses = {"a.1": "paid", "b.1": "paid", "a.2": "expired"}
    coins = {"u1": 850, "u2": 1000, "u3": 1000}
    assert cart_violations(carts, statuses, coins, 1000) == []


def test_each_broken_invariant_is_named() -> None:
    carts = [
        _cart("u1", [("a.1", "a", 100), ("b.1", "b", 50)], paid="parent"),  # partly paid
        {**_cart("u2", [("a.2", "a", 0)]), "asked": ["a", "c"]},  # got fewer than asked
        _cart("u3", [("c.3", "c", 300)]),  # still pending
        _cart("u4", [("b.4", "b", 200)]),  # expired, coins not back
    ]
    statuses = {"a.1": "paid", "b.1": "expired", "a.2": "paid", "c.3": "pending_payment"}
    statuses["b.4"] = "expired"
    coins = {"u1": 900, "u2": 1000, "u4": 800}
    found = cart_violations(carts, statuses, coins, 1000)
    assert any("u1: paid by its parent bill, yet only partly paid" in f for f in found)
    assert any("u2: asked for ['a', 'c'], was given 1 orders" in f for f in found)
    assert any("u3: an order is still pending" in f for f in found)
    assert any("u4: holds 800 coins, expected 1000" in f for f in found)
    assert cart_violations([], {}, {}, 1000) == ["no checkout succeeded"]
