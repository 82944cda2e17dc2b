"""A bucketed drop against a model: random purchases, cancels, expiries, payments, pauses,
purchases that crash between take-5 and place-8 (a claim left behind), a late place-8 of
such a purchase, and the claim sweeper, on B in {2, 3, 4}; buyers come from a few
addresses under a per-IP limit, with purchases that crash after ip_hold-3 and releases
whose ip_unhold-2 is lost (so that a refusal must reconcile).

After every step, read from Redis: every serial of the drop is in exactly one place (a
live order, an open claim, a bucket's returned list, or a bucket's undrawn window), no
buyer holds more than the limit, no address more than the per-IP limit over every bucket,
each bucket's counters agree with its pool, and the sale's summed counters agree with the
orders. A purchase answered sold_out must have found every bucket empty; one refused for
its address must come from an address with as many live or in-flight orders as the limit.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import hypothesis.stateful as hs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from flashsale.engine import buckets, errors
from flashsale.engine.engine import Engine, new_order_id
from flashsale.engine.keys import bucket_slot, home_bucket
from flashsale.engine.models import SaleUpdate
from flashsale.engine.statuses import HOLDS_SERIAL
from flashsale.errors import FlashsaleError

from .helpers import make_sale, model_examples

USERS = [f"u{i}" for i in range(6)]
IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
TIMEOUT_MS = 10_000
SALE = "bm"


@dataclass
class Crashed:
    """A purchase that stopped after take-5: its claim is open in ``lender``."""

    user: str
    lender: int
    kind: str
    serial: str
    draw: int
    args: list[str | int]
    placed: bool = False


@dataclass
class Model:
    size: int
    limit: int
    count: int
    status: str = "open"
    ip_limit: int = 1
    orders: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (user, expires)
    ips: dict[str, str] = field(default_factory=dict)  # order id -> its address
    crashed: dict[str, Crashed] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # a crashed ip_hold-3: id -> address


class BucketMachine(hs.RuleBasedStateMachine):
    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = 1_900_000_000_000
        self.engine = Engine.from_url(
            redis_url, namespace=f"t{secrets.token_hex(5)}", clock=lambda: self.now
        )
        self.model = Model(size=0, limit=1, count=1)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @hs.initialize(
        count=st.sampled_from([2, 3, 4]),
        size=st.integers(1, 9),
        limit=st.integers(1, 2),
        ip_limit=st.integers(1, 2),
    )
    def create(self, count: int, size: int, limit: int, ip_limit: int) -> None:
        self.model = Model(size=size, limit=limit, count=count, ip_limit=ip_limit)
        self.run(
            make_sale(
                self.engine,
                SALE,
                size=size,
                buckets=count,
                per_user_limit=limit,
                per_ip_limit=ip_limit,
                start_at=datetime.fromtimestamp(self.now / 1000 - 60, tz=UTC),
                payment_timeout_s=TIMEOUT_MS // 1000,
            )
        )

    # -- what Redis holds --------------------------------------------------------------

    async def _pools(self) -> list[list[str]]:
        """Each bucket's available serials: its returned list and its undrawn window
        (sequential assignment over the range 1..size: draw d gives serial d + 1)."""
        pools = []
        for slot in buckets.slots(SALE, self.model.count):
            k = self.engine.keys(slot)
            drawn, total = await self.engine.redis.hmget(k.meta, ["drawn", "total"])
            returned = await self.engine.redis.lrange(k.returned, 0, -1)
            back = [v.decode().partition(":")[2] for v in returned]
            pools.append(back + [str(d + 1) for d in range(int(drawn), int(total))])
        return pools

    async def _claims(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for slot in buckets.slots(SALE, self.model.count):
            for f, v in (await self.engine.redis.hgetall(self.engine.keys(slot).claims)).items():
                claim = buckets.decode_claim(f, v)
                found[claim.order_id] = claim.serial
        return found

    # -- rules -------------------------------------------------------------------------

    def _live(self, user: str, orders: list) -> int:  # type: ignore[type-arg]
        return sum(o.user_id == user and o.status in HOLDS_SERIAL for o in orders)

    def _taken(self, ip: str, orders: list) -> int:  # type: ignore[type-arg]
        """The address's live orders and in-flight purchases (a crash after ip_hold-3)."""
        live = sum(
            self.model.ips.get(o.order_id) == ip and o.status in HOLDS_SERIAL for o in orders
        )
        return live + sum(held == ip for held in self.model.held.values())

    @hs.rule(user=st.sampled_from(USERS), ip=st.sampled_from(["", *IPS]))
    def purchase(self, user: str, ip: str) -> None:
        before = self.run(self.engine.orders_of_sale(SALE))
        try:
            got = self.run(self.engine.purchase(SALE, user, ip=ip)).order
        except FlashsaleError as refused:
            if refused.code == "sold_out":
                assert all(not pool for pool in self.run(self._pools())), "a bucket had stock"
            elif refused.code == "limit_reached" and refused.extra["scope"] == "user":
                assert self._live(user, before) >= self.model.limit
            elif refused.code == "limit_reached":
                # exact: refused only when the address has the limit's worth, anywhere
                assert ip and self._live(user, before) < self.model.limit
                assert self._taken(ip, before) >= self.model.ip_limit
            else:
                assert refused.code == "sale_paused" and self.model.status == "paused"
            return
        assert self.model.status == "open"
        assert self._live(user, before) < self.model.limit
        assert not ip or self._taken(ip, before) < self.model.ip_limit
        home = bucket_slot(SALE, home_bucket(user, self.model.count))
        assert got.order_id.startswith(home + ".") and got.sale_id == SALE
        self.model.orders[got.order_id] = (user, self.now + TIMEOUT_MS)
        if ip:
            self.model.ips[got.order_id] = ip

    @hs.rule(user=st.sampled_from(USERS), ip=st.sampled_from(IPS))
    def crash_after_hold(self, user: str, ip: str) -> None:
        """A purchase that held its address's count (ip_hold-3) and stopped: its deadline
        is far, so the hold counts as in flight for the rest of the run."""
        home = home_bucket(user, self.model.count)
        if self.engine._ip_home(SALE, ip, home, self.model.count) is None:
            return  # counted where the buyer is: no hold
        k = self.engine.keys(bucket_slot(SALE, home_bucket(ip, self.model.count)))
        order_id = new_order_id(bucket_slot(SALE, home))
        seconds, _ = self.run(self.engine.redis.time())
        args = [order_id, ip, bucket_slot(SALE, home), (int(seconds) + 600) * 1000]
        reply = self.run(self.engine._call("ip_hold", [k.meta, k.ips, k.ipholds], args))
        if int(reply[0]) == 1:
            self.model.held[order_id] = ip
        else:
            assert int(reply[0]) == errors.Reply.IP_LIMIT_REACHED

    @hs.rule(user=st.sampled_from(USERS), data=st.data())
    def crash_after_take(self, user: str, data: st.DataObject) -> None:
        """A purchase that took a serial from a bucket and stopped before placing it."""
        lender = data.draw(st.integers(0, self.model.count - 1))
        home = self.engine.keys(bucket_slot(SALE, home_bucket(user, self.model.count)))
        order_id = new_order_id(home.sale_id)
        lent = self.engine.keys(bucket_slot(SALE, lender))
        took = self.run(self.engine._take(lent, order_id, home.sale_id, ""))
        if int(took[0]) == errors.Reply.SOLD_OUT:
            assert not self.run(self._pools())[lender]
            return
        _, kind, serial, draw = took
        args: list[str | int] = [SALE, user, "", self.now, "", "", 60, order_id, "", ""]
        self.model.crashed[order_id] = Crashed(user, lender, kind, serial, int(draw), args)

    @hs.precondition(lambda self: self.model.crashed)
    @hs.rule(data=st.data())
    def late_place(self, data: st.DataObject) -> None:
        """The crashed purchase's place-8 arrives after all (a slow call, not a crash)."""
        order_id = data.draw(st.sampled_from(list(self.model.crashed)))
        c = self.model.crashed[order_id]
        home = self.engine.keys(bucket_slot(SALE, home_bucket(c.user, self.model.count)))
        before = self.run(self.engine.orders_of_sale(SALE))
        swept = order_id not in self.run(self._claims())
        reply = self.run(self.engine._place(home, None, [*c.args, c.kind, c.serial, c.draw]))
        code = int(reply[0])
        if swept or c.placed:
            assert code == errors.Reply.FENCED, reply  # never placed twice, never after a fence
            return
        if code == errors.Reply.CREATED:
            assert self.model.status == "open" and self._live(c.user, before) < self.model.limit
            c.placed = True
            self.model.orders[order_id] = (c.user, self.now + TIMEOUT_MS)
        else:
            assert code in (errors.Reply.LIMIT_REACHED, errors.Reply.SALE_PAUSED), reply

    @hs.rule()
    def sweep(self) -> None:
        for slot in buckets.slots(SALE, self.model.count):
            self.run(self.engine.sweep_claims(slot, older_than_ms=0))
        # every claim ended (placed ones stay as orders); the crashed purchases stay in the
        # model: their place-8 may still arrive (late_place), and must be refused

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(list(self.model.orders)))

    @hs.precondition(lambda self: self.model.orders)
    @hs.rule(data=st.data(), unhold=st.booleans())
    def cancel(self, data: st.DataObject, unhold: bool) -> None:
        """A cancel; without ``unhold``, as by a process whose ip_unhold-2 is lost."""
        with_status = self.run(self.engine.get_order(self._pick(data)))
        assert with_status is not None
        if not unhold:
            self.engine._ip_limited[SALE] = False  # so it skips ip_unhold-2
        try:
            self.run(self.engine.cancel(with_status.order_id))
        except errors.OrderNotPending:
            assert with_status.status != "pending_payment"
        finally:
            self.engine._ip_limited.pop(SALE, None)

    @hs.precondition(lambda self: self.model.orders)
    @hs.rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        order_id = self._pick(data)
        try:
            self.run(self.engine.expire(order_id))
        except errors.NotDue:
            assert self.now < self.model.orders[order_id][1]
        except errors.OrderNotPending:
            pass

    @hs.precondition(lambda self: self.model.orders)
    @hs.rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        try:
            self.run(self.engine.confirm_payment(self._pick(data), "p1"))
        except errors.OrderNotPending:
            pass

    @hs.rule(status=st.sampled_from(["open", "paused"]))
    def pause_or_resume(self, status: str) -> None:
        self.run(self.engine.tune(SALE, SaleUpdate(status=status)))  # type: ignore[arg-type]
        self.model.status = status

    @hs.rule()
    def advance_clock(self) -> None:
        self.now += TIMEOUT_MS

    # -- invariants --------------------------------------------------------------------

    @hs.invariant()
    def holds(self) -> None:
        if not self.model.size:
            return
        orders = self.run(self.engine.orders_of_sale(SALE))
        live = [o for o in orders if o.status in HOLDS_SERIAL]
        claims = self.run(self._claims())
        placed = {o.order_id for o in orders}
        unplaced = [serial for order_id, serial in claims.items() if order_id not in placed]
        pools = self.run(self._pools())
        everywhere = [str(o.serial) for o in live] + unplaced + [s for p in pools for s in p]
        # every serial in exactly one place: none sold twice, none lost
        assert sorted(everywhere, key=int) == [str(i) for i in range(1, self.model.size + 1)]
        for user in USERS:
            assert self._live(user, orders) <= self.model.limit
        for ip in IPS:  # never over the limit, never under-counted in the IP home
            assert self._taken(ip, orders) <= self.model.ip_limit
            k = self.engine.keys(bucket_slot(SALE, home_bucket(ip, self.model.count)))
            counted = int(self.run(self.engine.redis.hget(k.ips, ip)) or 0)
            assert counted >= self._taken(ip, orders), (ip, counted)
        sale = self.run(self.engine.get_sale(SALE))
        pending = sum(o.status == "pending_payment" for o in orders)
        paid = sum(o.status == "paid" for o in orders)
        assert (sale.reserved, sale.sold) == (pending + len(unplaced), paid), (sale, orders, claims)
        assert sale.available == sum(len(p) for p in pools)
        assert sale.total == self.model.size
        assert (sale.status == "sold_out") == (self.model.status == "open" and not any(pools)), (
            sale.status
        )

    def teardown(self) -> None:
        if self.model.size:
            for slot in buckets.slots(SALE, self.model.count):
                k = self.engine.keys(slot)
                self.run(self.engine.redis.unlink(*k.all_fixed(), k.claims, k.fences, k.ipholds))
        self.run(self.engine.aclose())
        self.loop.close()


# 50 drops of up to 40 steps: ~20 s on a 2-core machine (per-IP rules in); a soak sets
# FLASHSALE_MODEL_EXAMPLES
RUNS = settings(max_examples=model_examples(50), stateful_step_count=40, deadline=None)


@pytest.mark.slow
def test_bucketed_drop_matches_the_model(redis_url: str) -> None:
    checks = settings(RUNS, suppress_health_check=list(HealthCheck))
    hs.run_state_machine_as_test(lambda: BucketMachine(redis_url), settings=checks)
