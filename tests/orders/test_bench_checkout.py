"""The checkout bench runs end to end on real Redis and PostgreSQL (a small round)."""

from __future__ import annotations

from flashsale.bench import checkout


async def test_the_bench_prints_a_row_per_cart_size(redis_url: str, pg_admin_url: str) -> None:
    rows = await checkout.run(redis_url, pg_admin_url, buyers=20, sizes=[1, 2], concurrency=4)
    assert rows[0] == checkout.HEADER
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["1", "2"]
    for row in rows[1:]:
        ratio = float(row.split("|")[5].split()[0])  # the median, then its spread
        assert ratio > 0
