"""The hot path tells the truth (docs/design.md, "Answers that are the truth"), on real servers.

- A frozen Redis (SIGSTOP: the socket stays open, nothing answers) turns calls
  into 503 within the deadline: ``outcome_unknown`` for the calls written before
  it froze, ``engine_unavailable`` for those never sent; the engine recovers by
  itself once Redis answers, and the same Idempotency-Key finds the order.
- The queue of calls per node is bounded: past it a call fails at once.
- A batch's replies are delivered per call: a script reload that fails for one
  call, or a WAIT that comes back short, never fails callers whose script ran.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest

from flashsale.devservers import EmbeddedRedis
from flashsale.engine import errors
from flashsale.engine.engine import Engine
from flashsale.engine.transport import TransportOptions

from .helpers import assert_invariants, make_sale

DEADLINE_MS = 300
SLACK_S = 0.7  # scheduling on a busy 2-core machine


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as running:
        yield running


def _engine(url: str, namespace: str = "", **options: Any) -> Engine:
    transport = TransportOptions(timeout_ms=DEADLINE_MS, **options)
    return Engine.from_url(
        url, namespace=namespace or f"t{secrets.token_hex(3)}", transport=transport
    )


@pytest.fixture
async def engine(server: EmbeddedRedis) -> AsyncIterator[Engine]:
    eng = _engine(server.url)
    try:
        yield eng
    finally:
        server.resume()
        await eng.aclose()


async def _timed(*calls: Awaitable[Any]) -> tuple[list[Any], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(10):  # before the fix a frozen Redis hangs the call forever
        results = await asyncio.gather(*calls, return_exceptions=True)
    return list(results), loop.time() - started


async def _bought(engine: Engine, sale_id: str, user: str, key: str | None = None) -> object:
    """Retry a purchase until Redis answers again (bounded): the engine recovers by itself."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 10
    while True:
        try:
            return await engine.purchase(sale_id, user, idempotency_key=key)
        except (errors.EngineUnavailable, errors.OutcomeUnknown):
            if loop.time() > give_up:
                raise
            await asyncio.sleep(0.05)


async def test_a_frozen_redis_answers_503_within_the_deadline_and_recovers_by_itself(
    server: EmbeddedRedis, engine: Engine
) -> None:
    await make_sale(engine, "frozen", size=50)
    await engine.purchase("frozen", "warm-up")  # the hot path's connections are open
    server.pause()
    # written before anyone knew: the replies never came, the scripts may run later
    written, elapsed = await _timed(
        *(engine.purchase("frozen", f"a{i}", idempotency_key=f"k{i}") for i in range(5))
    )
    assert all(isinstance(r, errors.OutcomeUnknown) for r in written), written
    assert elapsed < DEADLINE_MS / 1000 + SLACK_S
    # the node is presumed frozen: nothing more is written to it, and nothing happens
    held, elapsed = await _timed(*(engine.purchase("frozen", f"b{i}") for i in range(5)))
    assert all(isinstance(r, errors.EngineUnavailable) for r in held), held
    assert elapsed < DEADLINE_MS / 1000 + SLACK_S
    server.resume()
    await _bought(engine, "frozen", "after")
    # outcome unknown: the same Idempotency-Key returns the order if it was made (or makes
    # it, if the late call did nothing); either way the buyer ends with exactly one order
    for i in range(5):
        retried = await _bought(engine, "frozen", f"a{i}", key=f"k{i}")
        assert retried is not None
        assert len(await engine.buyer_orders("frozen", f"a{i}")) == 1
    for i in range(5):  # never sent: they never happen
        assert await engine.buyer_orders("frozen", f"b{i}") == []
    await assert_invariants(engine, "frozen")


async def test_the_queue_per_node_is_bounded(server: EmbeddedRedis) -> None:
    engine = _engine(server.url, max_pending=3)
    try:
        await make_sale(engine, "bounded", size=50)
        server.pause()
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = [asyncio.create_task(engine.purchase("bounded", f"u{i}")) for i in range(10)]
        done, _ = await asyncio.wait(tasks, timeout=DEADLINE_MS / 1000 / 2)
        refused = [t for t in done if isinstance(t.exception(), errors.EngineUnavailable)]
        assert len(refused) == 7, [t.exception() for t in done]  # at once, not at a deadline
        assert loop.time() - started < DEADLINE_MS / 1000
        results, _ = await _timed(*tasks)
        assert sum(isinstance(r, errors.OutcomeUnknown) for r in results) == 3
    finally:
        server.resume()
        await engine.aclose()


async def test_a_failed_script_reload_fails_only_the_calls_that_did_not_run(
    server: EmbeddedRedis,
) -> None:
    """A user who may not SCRIPT LOAD: after SCRIPT FLUSH, one batch carries a purchase
    (its script reloaded by an admin) and a cancel (its script gone): the purchase ran and
    its caller gets the order; the cancel did not run and says so."""
    admin = server.client()
    admin.execute_command(
        "ACL", "SETUSER", "seller", "on", ">seller-pw", "~*", "&*", "+@all", "-script|load"
    )
    owner = _engine(server.url)
    url = server.url.replace("redis://", "redis://seller:seller-pw@")
    limited = _engine(url, owner.namespace)
    try:
        await make_sale(owner, "reload", size=10)
        first = (await owner.purchase("reload", "first")).order
        admin.script_flush()
        admin.script_load(owner._scripts["purchase"].source)
        bought, cancelled = await asyncio.gather(
            limited.purchase("reload", "second"),
            limited.cancel(first.order_id),
            return_exceptions=True,
        )
        assert not isinstance(bought, BaseException), bought
        assert bought.order.status == "pending_payment"
        assert isinstance(cancelled, errors.EngineUnavailable), cancelled
        assert "could not be loaded" in str(cancelled)
        still = await owner.get_order(first.order_id)
        assert still is not None and still.status == "pending_payment"
        await assert_invariants(owner, "reload")
    finally:
        admin.close()
        await limited.aclose()
        await owner.aclose()


async def test_a_short_wait_delivers_the_real_replies_and_alerts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The replica stops acknowledging (SIGSTOP): WAIT comes back short after the scripts
    ran; the buyers get their orders (they exist), and an alert is logged."""
    with EmbeddedRedis() as primary, EmbeddedRedis(replica_of=primary) as replica:
        replica.wait_in_sync()
        engine = Engine.from_url(
            primary.url,
            namespace=f"t{secrets.token_hex(3)}",
            transport=TransportOptions(wait_replicas=1, wait_timeout_ms=200),
        )
        try:
            await make_sale(engine, "short", size=10)
            replica.pause()
            with caplog.at_level(logging.ERROR, logger="flashsale.engine"):
                results, _ = await _timed(*(engine.purchase("short", f"u{i}") for i in range(4)))
            assert all(not isinstance(r, BaseException) for r in results), results
            assert "WAIT 1" in caplog.text and "replies are delivered" in caplog.text
            orders = await assert_invariants(engine, "short")
            assert len(orders) == 4
        finally:
            replica.resume()
            await engine.aclose()
