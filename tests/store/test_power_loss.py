"""Simulated power loss: the AOF cut at a random byte of its unacknowledged tail.

With appendfsync always, every write acknowledged to a client is on disk, so a
power loss can only tear the writes still in flight. The test kills Redis -9
during a burst of purchases, cuts the AOF at a random byte after the last
acknowledged write, restarts (Redis 7.0 "loads anyway" and truncates), and runs
``recover``: it must see the truncated load and rewrite the AOF before the sale
reopens. Then more purchases, another restart: the audit must be clean, every
time. Without the rewrite, the second restart replays half of an old script
(the control test below), which the audit sees.
"""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest
from redis.exceptions import ResponseError

from flashsale.engine.engine import Engine
from flashsale.engine.errors import EngineUnavailable
from flashsale.engine.models import Order
from flashsale.errors import FlashsaleError
from flashsale.store.audit import AuditReport, audit_sale
from flashsale.store.persist import PersistConfig, Persister
from flashsale.store.recover import recover

from .servers import PrivateRedis
from .store_helpers import make_sale


async def _buy(engine: Engine, sale_id: str, users: list[str]) -> list[Order]:
    results = await asyncio.gather(
        *(engine.purchase(sale_id, u) for u in users), return_exceptions=True
    )
    return [r.order for r in results if not isinstance(r, BaseException)]


async def _reconnect(engine: Engine, sale_id: str) -> None:
    """After a restart the engine's first script call finds its connections dead."""
    await engine.redis.connection_pool.disconnect()
    for _ in range(50):
        try:
            await engine.expire(f"{sale_id}.no-such-order")
        except EngineUnavailable:
            await asyncio.sleep(0.05)
        except ResponseError as exc:  # the engine's own parser: LOADING is a plain error
            if "LOADING" not in str(exc):
                raise
            await asyncio.sleep(0.05)
        except FlashsaleError:
            return  # the script answered (order_not_found): connected again
    raise AssertionError("the engine did not reconnect")


MULTI = b"*1\r\n$5\r\nMULTI\r\n"


def _inside_a_multi(data: bytes, start: int) -> int | None:
    """An offset in the middle of the last complete MULTI block that starts after
    ``start``, inside a command: half of a script's writes kept, the rest torn."""
    at = data.rfind(MULTI, start)
    while at >= 0:
        cut = _half_of_block(data, at + len(MULTI))
        if cut is not None:
            return cut
        at = data.rfind(MULTI, start, at)  # that block was torn at the kill: an earlier one
    return None


def _half_of_block(data: bytes, pos: int) -> int | None:
    ends: list[int] = []
    try:
        while not data.startswith(b"*1\r\n$4\r\nEXEC\r\n", pos):
            end = data.index(b"\r\n", pos)
            for _ in range(int(data[pos + 1 : end])):  # "*N": N bulk strings follow
                length_end = data.index(b"\r\n", end + 2)
                end = length_end + 2 + int(data[end + 3 : length_end])  # "$len" then bytes
            pos = end + 2
            ends.append(pos)
    except ValueError:  # the block runs past the end of the file
        return None
    # a few bytes into the next command: Redis reverts a block cut between two commands,
    # but a torn command is truncated to the last whole one, leaving the MULTI open
    return ends[len(ends) // 2 - 1] + 5 if len(ends) >= 2 else None


async def power_loss_trials(
    pg_pool: asyncpg.Pool, namespace: str, *, trials: int, use_recover: bool
) -> list[tuple[bool | None, bool, AuditReport]]:
    """Per trial: (truncation detected, AOF rewritten, audit after the second restart)."""
    rng = random.Random()
    server = PrivateRedis(appendonly=True, appendfsync="always")
    server.start()
    engine = Engine.from_url(server.url, namespace=namespace, max_connections=8)
    sale_id = f"power-{namespace}"
    outcomes: list[tuple[bool | None, bool, AuditReport]] = []
    try:
        await make_sale(engine, sale_id, size=100_000)
        persister = Persister(
            engine.redis,
            pg_pool,
            namespace=namespace,
            sales=[sale_id],
            config=PersistConfig(min_idle_ms=100, reclaim_every_s=0.05),
        )
        n = 0
        cuts: list[tuple[int, int, int]] = []

        def users(count: int) -> list[str]:
            nonlocal n
            n += count
            return [f"u{i}" for i in range(n - count, n)]

        for _ in range(trials):
            acked = await _buy(engine, sale_id, users(300))
            assert len(acked) == 300
            await persister.drain(timeout_s=30)
            safe_size = server.aof_files()[-1].stat().st_size
            burst = [asyncio.ensure_future(engine.purchase(sale_id, u)) for u in users(200)]
            grown = safe_size + rng.randrange(2_000, 40_000)
            while server.aof_files()[-1].stat().st_size < grown and not all(  # noqa: ASYNC110
                f.done() for f in burst
            ):
                await asyncio.sleep(0.001)
            server.kill()  # the power goes, mid-burst
            await asyncio.gather(*burst, return_exceptions=True)  # never acknowledged
            aof = server.aof_files()[-1]
            size = aof.stat().st_size
            cut = rng.randrange(safe_size, size) if size > safe_size else size
            if not use_recover:  # the hazard itself: a cut just after a script's first write
                cut = _inside_a_multi(aof.read_bytes(), safe_size) or cut
            with aof.open("r+b") as fh:
                fh.truncate(cut)
            cuts.append((safe_size, size, cut))
            server.start()
            await _reconnect(engine, sale_id)
            detected: bool | None = None
            rewritten = False
            if use_recover:
                report = await recover(engine, pg_pool)
                detected, rewritten = report.aof.truncated, report.rewritten
                assert report.ok, report
            more = await _buy(engine, sale_id, users(300))
            assert len(more) == 300
            await persister.drain(timeout_s=30)
            server.kill()
            server.start()  # the restart that would replay half an old script
            await _reconnect(engine, sale_id)
            outcomes.append(
                (detected, rewritten, await audit_sale(engine.redis, pg_pool, namespace, sale_id))
            )
            await persister.drain(timeout_s=30)
    finally:
        print("\ncuts (acknowledged size, size at the kill, cut):", cuts)
        await engine.aclose()
        server.cleanup()
    return outcomes


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_truncated_aof_is_detected_rewritten_and_audited(
    pg_pool: asyncpg.Pool, namespace: str
) -> None:
    outcomes = await power_loss_trials(pg_pool, namespace, trials=5, use_recover=True)
    inconsistent = [report.violations for _, _, report in outcomes if not report.ok]
    print(
        f"\nwith recover: {[(d, r) for d, r, _ in outcomes]}, "
        f"{len(inconsistent)} inconsistent restarts"
    )
    assert inconsistent == []
    # a cut inside a script's MULTI block is what every trial makes (a torn tail)
    assert sum(1 for detected, rewritten, _ in outcomes if detected and rewritten) >= 4


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_without_the_rewrite_the_audit_sees_a_half_replayed_script(
    pg_pool: asyncpg.Pool, namespace: str
) -> None:
    outcomes = await power_loss_trials(pg_pool, namespace, trials=3, use_recover=False)
    inconsistent = [report for _, _, report in outcomes if not report.ok]
    print(
        f"\nwithout recover: {len(inconsistent)} of {len(outcomes)} restarts inconsistent: "
        f"{[sorted({v.code for v in r.violations}) for r in inconsistent]}"
    )
    assert inconsistent, "the power-loss model no longer exposes the hazard"


async def test_recover_reopens_clean_sales_and_keeps_a_broken_one_paused(
    pg_pool: asyncpg.Pool, namespace: str
) -> None:
    server = PrivateRedis(appendonly=True, appendfsync="always")
    server.start()
    engine = Engine.from_url(server.url, namespace=namespace, max_connections=4)
    try:
        good, bad = f"good-{namespace}", f"bad-{namespace}"
        for sale_id in (good, bad):
            await make_sale(engine, sale_id, size=100)
            await _buy(engine, sale_id, [f"u{i}" for i in range(20)])
        await Persister(engine.redis, pg_pool, namespace=namespace).drain(timeout_s=30)
        await engine.redis.hincrby(engine.keys(bad).meta, "drawn", 1)  # a serial lost
        report = await recover(engine, pg_pool)
        assert report.aof.aof_enabled and report.aof.truncated is False
        assert not report.rewritten
        by_sale = {r.sale_id: r for r in report.sales}
        assert by_sale[good].reopened and by_sale[good].ok
        assert by_sale[bad].was_open and not by_sale[bad].reopened and not by_sale[bad].ok
        assert (await engine.get_sale(good)).status == "open"
        assert (await engine.get_sale(bad)).status == "paused"
        assert not report.ok
    finally:
        await engine.aclose()
        server.cleanup()
