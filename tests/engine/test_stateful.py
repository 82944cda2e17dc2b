"""Random sequences of purchase / cancel / expire / confirm / tune, checked against a model.

The model is plain Python: a FIFO of released serials, a cursor over fresh
ones, and each order's state. After every step the engine must have answered
exactly as the model predicts and the invariants must hold in Redis.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleUpdate, SerialsSpec
from flashsale.errors import FlashsaleError

from .helpers import assert_invariants, delete_sale, make_sale, model_examples

USERS = [f"u{i}" for i in range(5)]
TIMEOUT_MS = 10_000


@dataclass
class ModelOrder:
    user: str
    serial: int
    status: str
    expires_ms: int
    payment: str = ""


@dataclass
class Model:
    total: int
    limit: int
    status: str = "open"
    fresh: int = 1  # next never-sold serial
    returned: deque[int] = field(default_factory=deque)
    orders: dict[str, ModelOrder] = field(default_factory=dict)

    def live(self, user: str) -> int:
        return sum(
            o.user == user and o.status in ("pending_payment", "paid") for o in self.orders.values()
        )

    def release(self, order: ModelOrder, status: str) -> None:
        order.status = status
        self.returned.append(order.serial)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis_url = redis_url
        self.namespace = f"t{secrets.token_hex(5)}"
        self.now = 1_900_000_000_000
        self.engine = Engine.from_url(redis_url, namespace=self.namespace, clock=lambda: self.now)
        self.model = Model(total=0, limit=1)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize(size=st.integers(1, 6), limit=st.integers(1, 2))
    def create(self, size: int, limit: int) -> None:
        from datetime import UTC, datetime

        self.model = Model(total=size, limit=limit)
        self.run(
            make_sale(
                self.engine,
                "m",
                size=size,
                per_user_limit=limit,
                start_at=datetime.fromtimestamp(self.now / 1000 - 60, tz=UTC),
                payment_timeout_s=TIMEOUT_MS // 1000,
            )
        )

    @rule(user=st.sampled_from(USERS))
    def purchase(self, user: str) -> None:
        m = self.model
        try:
            got = self.run(self.engine.purchase("m", user)).order
        except FlashsaleError as refused:
            expected = (
                "sale_paused"
                if m.status == "paused"
                else "limit_reached"
                if m.live(user) >= m.limit
                else "sold_out"
            )
            assert refused.code == expected
            if expected == "sold_out":
                assert not m.returned and m.fresh > m.total
            return
        assert m.status == "open" and m.live(user) < m.limit
        serial = m.returned.popleft() if m.returned else m.fresh
        if serial == m.fresh:
            m.fresh += 1
        assert got.serial == serial
        m.orders[got.order_id] = ModelOrder(user, serial, "pending_payment", self.now + TIMEOUT_MS)

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(list(self.model.orders)))  # bought order: ids are random

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), by_owner=st.booleans())
    def cancel(self, data: st.DataObject, by_owner: bool) -> None:
        order_id = self._pick(data)
        order = self.model.orders[order_id]
        try:
            self.run(self.engine.cancel(order_id, user_id=order.user if by_owner else None))
        except errors.OrderNotPending as refused:
            assert order.status != "pending_payment" and refused.extra["status"] == order.status
            return
        assert order.status == "pending_payment"
        self.model.release(order, "cancelled")

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        order_id = self._pick(data)
        order = self.model.orders[order_id]
        try:
            self.run(self.engine.expire(order_id))
        except errors.NotDue:
            assert order.status == "pending_payment" and self.now < order.expires_ms
            return
        except errors.OrderNotPending:
            assert order.status != "pending_payment"
            return
        assert order.status == "pending_payment" and self.now >= order.expires_ms
        self.model.release(order, "expired")

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), payment=st.sampled_from(["p1", "p2"]))
    def confirm(self, data: st.DataObject, payment: str) -> None:
        order_id = self._pick(data)
        order = self.model.orders[order_id]
        try:
            paid = self.run(self.engine.confirm_payment(order_id, payment))
        except errors.OrderNotPending as refused:
            assert refused.extra["status"] == order.status
            assert not (order.status == "paid" and order.payment == payment)
            return
        if order.status == "paid":
            assert order.payment == payment  # a replay of the same payment
        else:
            assert order.status == "pending_payment"
            order.status, order.payment = "paid", payment
        assert paid.status == "paid"

    @rule(status=st.sampled_from(["open", "paused"]))
    def pause_or_resume(self, status: str) -> None:
        self.run(self.engine.tune("m", SaleUpdate(status=status)))  # type: ignore[arg-type]
        self.model.status = status

    @rule(extra=st.integers(1, 3))
    def add_serials(self, extra: int) -> None:
        lo = self.model.total + 1
        self.run(
            self.engine.tune("m", SaleUpdate(add_serials=SerialsSpec(range=(lo, lo + extra - 1))))
        )
        self.model.total += extra

    @rule(limit=st.integers(1, 3))
    def change_limit(self, limit: int) -> None:
        self.run(self.engine.tune("m", SaleUpdate(per_user_limit=limit)))
        self.model.limit = limit

    @rule(ms=st.sampled_from([1_000, 5_000, 10_000]))
    def advance_clock(self, ms: int) -> None:
        self.now += ms

    @invariant()
    def holds(self) -> None:
        if self.model.total:
            self.run(assert_invariants(self.engine, "m"))
            sale = self.run(self.engine.get_sale("m"))
            pending = sum(o.status == "pending_payment" for o in self.model.orders.values())
            paid = sum(o.status == "paid" for o in self.model.orders.values())
            assert (sale.reserved, sale.sold, sale.total) == (pending, paid, self.model.total)

    def teardown(self) -> None:
        if self.model.total:
            self.run(delete_sale(self.engine, "m"))
        self.run(self.engine.aclose())
        self.loop.close()


@pytest.mark.slow
def test_engine_matches_the_model(redis_url: str) -> None:
    run_state_machine_as_test(
        lambda: EngineMachine(redis_url),
        settings=settings(
            max_examples=model_examples(100),
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
