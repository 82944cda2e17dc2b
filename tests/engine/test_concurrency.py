"""The oversell test: many clients at one sale, exactly `total` successes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.transport import TransportOptions

from .helpers import assert_invariants, make_sale


async def test_20000_attempts_from_5000_buyers_sell_exactly_1000(
    engine: Engine, redis_url: str
) -> None:
    await make_sale(engine, "hot", size=1000, per_user_limit=1)
    # four engines = four connection pools, so the scripts truly interleave in Redis; the
    # tail of a 25,000-call burst may wait in the queue past the default 2 s deadline on a
    # busy machine (deadlines have tests of their own: test_transport.py)
    patient = TransportOptions(timeout_ms=60_000)
    engines = [
        Engine.from_url(redis_url, namespace=engine.namespace, transport=patient) for _ in range(4)
    ]
    rng = random.Random(7)
    attempts = [f"buyer-{rng.randrange(5000)}" for _ in range(20_000)]
    attempts += [f"buyer-{i}" for i in range(5000)]  # every buyer tries at least once
    rng.shuffle(attempts)
    try:
        results = await asyncio.gather(
            *(
                engines[i % 4].purchase("hot", user, ip=f"10.0.{i % 250}.1")
                for i, user in enumerate(attempts)
            ),
            return_exceptions=True,
        )
    finally:
        for extra in engines:
            await extra.aclose()
    sold = [r for r in results if not isinstance(r, BaseException)]
    refusals = Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
    assert len(sold) == 1000
    assert set(refusals) <= {"SoldOut", "LimitReached"}, refusals
    assert len({p.order.serial for p in sold}) == 1000
    assert {p.order.serial for p in sold} == set(range(1, 1001))
    assert max(Counter(p.order.user_id for p in sold).values()) == 1
    sale = await engine.get_sale("hot")
    assert (sale.sold, sale.reserved, sale.available, sale.status) == (0, 1000, 0, "sold_out")
    await assert_invariants(engine, "hot")


async def test_per_user_limit_above_one_is_exact_under_concurrency(engine: Engine) -> None:
    await make_sale(engine, "multi", size=500, per_user_limit=3)
    results = await asyncio.gather(
        *(engine.purchase("multi", f"u{i % 20}") for i in range(400)), return_exceptions=True
    )
    sold = [r for r in results if not isinstance(r, BaseException)]
    assert Counter(p.order.user_id for p in sold) == {f"u{i}": 3 for i in range(20)}
    assert all(isinstance(r, errors.LimitReached) for r in results if isinstance(r, BaseException))


async def test_per_ip_limit_counts_live_orders_per_address(engine: Engine) -> None:
    await make_sale(engine, "ip", size=100, per_ip_limit=5)
    results = await asyncio.gather(
        *(engine.purchase("ip", f"bot{i}", ip="203.0.113.9") for i in range(50)),
        return_exceptions=True,
    )
    sold = [r for r in results if not isinstance(r, BaseException)]
    assert len(sold) == 5
    refused = [r for r in results if isinstance(r, errors.LimitReached)]
    assert len(refused) == 45 and all(r.extra["scope"] == "ip" for r in refused)
    # a cancelled order frees its address's slot
    await engine.cancel(sold[0].order.order_id)
    again = await engine.purchase("ip", "bot-late", ip="203.0.113.9")
    assert again.order.status == "pending_payment"
