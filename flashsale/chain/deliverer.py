"""`flashsale deliver`: mint each paid order's token to its buyer, exactly once.

One tick (every FLASHSALE_CHAIN_POLL_S, sooner while work is left):

1. **Find work** in PostgreSQL: paid orders get a delivery (``awaiting_address``
   until the buyer has an address, then ``queued``); deliveries of orders that
   stopped being paid before delivery started are cancelled.
2. **Deploy** the contract of each sale that has queued deliveries and none yet.
3. **Submit** queued deliveries, up to FLASHSALE_CHAIN_MAX_IN_FLIGHT
   transactions in flight: the order moves to delivering (`OrderMoves`), its
   mint is signed under a fresh nonce (`ledger`) and broadcast in nonce order.
   A delivery tried before is first checked on chain: a token already minted to
   the buyer is delivered, never minted again.
4. **Track** (`tracker.Tracker`): mined, confirmed after
   FLASHSALE_CHAIN_CONFIRMATIONS blocks, reorged, dropped, stuck.

A node that does not answer stops the tick (alert ``chain_unreachable``);
nothing is lost, the next tick resumes where this one stopped. One deliverer
runs per database (an advisory lock; a second one waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from flashsale.chain import failures
from flashsale.chain.contract import (
    DEPLOY_GAS,
    MINT_GAS,
    contract_address,
    deploy_data,
    mint_data,
    symbol_for,
)
from flashsale.chain.failures import Failure
from flashsale.chain.ledger import Job, Ledger, Tx
from flashsale.chain.moves import OrderMoves
from flashsale.chain.rpc import ChainClient, ChainUnreachable, Sent
from flashsale.chain.signer import FeePolicy, Signer
from flashsale.chain.tracker import Tracker
from flashsale.store.queries import Queries

log = logging.getLogger("flashsale.chain")
q = Queries("flashsale.chain")

LOCK_KEY = int.from_bytes(hashlib.sha1(b"flashsale.deliver").digest()[:8], "big", signed=True)
DISCOVER_BATCH = 1000
MAX_MINT_ATTEMPTS = 3

Positions = Callable[[str], Awaitable[dict[str, int]]]


class ChainReset(Exception):
    """The node's genesis block is not the one our records were made on."""


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    confirmations: int = 2
    max_in_flight: int = 256
    poll_s: float = 1.0
    bump_after_s: float = 30.0
    recheck_after_s: float = 2.0  # an unmined transaction is looked for again after this
    mint_gas: int = MINT_GAS  # the gas limit of a mint (tests set it too low to revert)
    fees: FeePolicy = field(default_factory=FeePolicy)


def token_id_of(serial: str, serial_kind: str, positions: dict[str, int]) -> int:
    """The serial for a range sale; the serial's position in the list (1 first) for a list."""
    return int(serial) if serial_kind == "r" else positions[serial]


@dataclass(slots=True)
class DeliverStats:
    """Plain counters the deliverer keeps; ``flashsale/telemetry`` exports them."""

    ticks: int = 0
    tick_errors: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0
    requeued: int = 0
    in_flight: int = 0  # mint transactions sent, not yet confirmed (after each tick)
    chain_unreachable: int = 0  # 1 while the node does not answer
    given_up: int = 0  # deliveries failed and not asked again (after each tick)


class Deliverer:
    def __init__(
        self,
        pool: Any,
        client: ChainClient,
        signer: Signer,
        moves: OrderMoves,
        positions: Positions,
        config: DeliveryConfig | None = None,
    ) -> None:
        self.pool = pool
        self.client = client
        self.signer = signer
        self.moves = moves
        self.positions = positions
        self.config = config or DeliveryConfig()
        self.ledger = Ledger(pool, signer)
        self.tracker = Tracker(self)
        self._positions: dict[str, dict[str, int]] = {}
        self._unreachable_since: float | None = None
        self.stats = DeliverStats()

    @property
    def chain_id(self) -> int:
        return self.signer.chain_id

    # -- running ---------------------------------------------------------------------

    async def start(self) -> None:
        """Check the chain is the one our records know, then load what is in flight."""
        genesis = await self.client.genesis_hash()
        known = await self.pool.fetchrow(q("get_head"), self.chain_id)
        if known is not None and known["genesis_hash"] != genesis:
            await self.alert(Failure.CHAIN_RESET, expected=known["genesis_hash"], found=genesis)
            raise ChainReset(
                f"chain {self.chain_id} has genesis {genesis}, not {known['genesis_hash']}"
            )
        await self.pool.execute(q("put_head"), self.chain_id, genesis, await self.client.head())
        await self.ledger.load()
        self.tracker.reset(await self.client.head())

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; waits for the node and for the advisory lock."""
        async with self.pool.acquire() as lock_conn:
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                log.info("another deliverer holds the lock; waiting")
                if await _wait(stop, 5.0):
                    return
            try:
                await self._run_locked(stop)
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)

    async def _run_locked(self, stop: asyncio.Event) -> None:
        started = False
        delay = self.config.poll_s
        while not stop.is_set():
            busy = False
            try:
                if not started:
                    await self.start()
                    started = True
                busy = await self.tick()
                self._reachable()
                delay = self.config.poll_s
            except ChainUnreachable as exc:
                self.stats.tick_errors += 1
                await self._unreachable(exc)
                delay = min(max(delay * 2, self.config.poll_s), 10.0)
            except ChainReset:
                raise
            except Exception:  # PostgreSQL or Redis away, or a bug: log, back off, go on
                self.stats.tick_errors += 1
                log.exception("deliver: the tick failed; trying again")
                delay = min(max(delay * 2, self.config.poll_s), 10.0)
                started = False  # memory may be ahead of the database: reload from it
            if await _wait(stop, min(delay, 0.02) if busy else delay):
                return

    async def tick(self) -> bool:
        """One round; true when work was left for an immediate next round."""
        head = await self.client.head()
        await self.pool.execute(q("set_head"), self.chain_id, head)
        await self.discover()
        await self.deploy()
        submitted = await self.submit()
        await self.tracker.track(head)
        self.stats.ticks += 1
        self.stats.in_flight = self.ledger.in_flight("mint")
        # a partial index holds only these: the count costs the same whatever the history
        self.stats.given_up = int(await self.pool.fetchval(q("count_given_up")))
        return submitted > 0  # more may be waiting: look again at once

    async def _unreachable(self, exc: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            self.stats.chain_unreachable = 1
            await self.alert(Failure.CHAIN_UNREACHABLE, url=self.client.url, error=str(exc))

    def _reachable(self) -> None:
        if self._unreachable_since is not None:
            down = time.monotonic() - self._unreachable_since
            log.info("chain answers again after %.1f s; deliveries resume", down)
            self._unreachable_since = None
            self.stats.chain_unreachable = 0

    async def alert(
        self, failure: Failure, *, order_id: str | None = None, tx_hash: str | None = None,
        **detail: Any,
    ) -> None:  # fmt: skip
        record = failures.report(failure, order_id=order_id, tx_hash=tx_hash, **detail)
        if record["severity"] == "log":
            return
        with contextlib.suppress(Exception):  # an alert never stops a delivery
            await self.pool.execute(
                q("insert_alert"), failure.value, record["severity"], order_id, tx_hash,
                json.dumps(detail, default=str),
            )  # fmt: skip

    # -- 1. finding work -------------------------------------------------------------

    async def _token_id(self, sale_id: str, serial: str, kind: str) -> int:
        if kind == "r":
            return int(serial)
        known = self._positions.get(sale_id)
        if known is None or serial not in known:  # serials may be added to a live sale
            known = self._positions[sale_id] = await self.positions(sale_id)
        return token_id_of(serial, kind, known)

    async def discover(self) -> None:
        for order_id in await self.pool.fetch(q("cancel_unpaid")):
            await self.alert(Failure.ORDER_NOT_PAID, order_id=order_id["order_id"])
        await self.pool.execute(q("promote_awaiting"))
        rows = await self.pool.fetch(q("paid_without_delivery"), DISCOVER_BATCH)
        if not rows:
            return
        new: list[tuple[str, str, str, int]] = []
        for r in rows:
            token = await self._token_id(r["sale_id"], r["serial"], r["serial_kind"])
            if r["delivery_status"] is None:
                new.append((r["order_id"], r["sale_id"], r["user_id"], token))
                continue
            try:  # cancelled while its refund was reviewed, and paid again (refund rejected)
                await self.pool.execute(q("revive_delivery"), r["order_id"], "cancelled", None)
            except asyncpg.UniqueViolationError:
                await self._token_taken(r["order_id"], r["sale_id"], r["user_id"], token)
        if not new:
            return
        columns = [[n[0] for n in new], [n[1] for n in new], [n[2] for n in new]]
        tokens = [Decimal(n[3]) for n in new]
        inserted = await self.pool.fetch(q("add_deliveries"), *columns, tokens)
        added = {r["order_id"] for r in inserted}
        for order_id, sale_id, user_id, token in new:
            if order_id not in added:  # another live delivery holds this token
                await self._token_taken(order_id, sale_id, user_id, token)

    async def _token_taken(self, order_id: str, sale_id: str, user_id: str, token: int) -> None:
        reason = f"token {token} of sale {sale_id} is another order's delivery"
        await self.pool.execute(
            q("add_failed_delivery"), order_id, sale_id, user_id, Decimal(token), reason
        )
        await self.alert(Failure.TOKEN_TAKEN, order_id=order_id, token_id=str(token))

    # -- 2. contracts ----------------------------------------------------------------

    async def deploy(self) -> None:
        if self.ledger.in_flight("deploy") >= 8:
            return
        sales = await self.pool.fetch(q("sales_without_contract"), 8)
        if not sales:
            return
        jobs = [
            Job("deploy", sale, None, None, deploy_data(name, symbol_for(sale)), DEPLOY_GAS)
            for sale, name in ((s["sale_id"], s["name"]) for s in sales)
        ]

        async def record(conn: Any, tx: Tx) -> None:
            address = contract_address(self.signer.address, tx.nonce)
            await conn.execute(
                q("insert_contract"), tx.job.sale_id, self.chain_id, address,
                self.signer.address, tx.nonce,
            )  # fmt: skip
            log.info("deploying the contract of sale %s at %s", tx.job.sale_id, address)

        await self._sign_and_send(jobs, record)

    # -- 3. submitting ---------------------------------------------------------------

    async def submit(self) -> int:
        room = self.config.max_in_flight - self.ledger.in_flight("mint")
        if room <= 0:
            return 0
        rows = await self.pool.fetch(q("queued_deliveries"), self.chain_id, room)
        jobs: list[Job] = []
        for r in rows:
            order_id, address, token = r["order_id"], r["address"], int(r["token_id"])
            if r["attempts"] > 0:
                # tried before: a transaction may have landed after all; never mint twice
                owner = await self.client.owner_of(r["contract"], token)
                if owner is not None:
                    await self.settle_minted(order_id, owner, address, token)
                    continue
            # paid -> delivering; a replay for a retry under way, a move again for a
            # delivery an operator asked for again (its order went back to paid)
            refusal = await self.moves.start_delivery(order_id)
            if refusal is not None:
                await self.pool.execute(
                    q("delivery_status"), order_id, "cancelled", f"order is {refusal}"
                )
                await self.alert(Failure.ORDER_NOT_PAID, order_id=order_id, status=refusal)
                continue
            jobs.append(
                Job("mint", r["sale_id"], order_id, r["contract"], mint_data(address, token),
                    self.config.mint_gas)
            )  # fmt: skip

        async def record(conn: Any, tx: Tx) -> None:
            await conn.execute(
                q("delivery_submitted"), tx.job.order_id, self.chain_id, self.signer.address,
                tx.nonce,
            )  # fmt: skip

        await self._sign_and_send(jobs, record)
        self.stats.submitted += len(jobs)
        return len(jobs)

    async def settle_minted(self, order_id: str, owner: str, address: str, token: int) -> None:
        """A token found minted: delivered when it is the buyer's, failed otherwise."""
        if owner == address:
            await self.alert(Failure.ALREADY_MINTED, order_id=order_id, token_id=str(token))
            await self.confirmed(order_id)
        else:
            await self.failed(
                order_id, f"token {token} is owned by {owner}", Failure.WRONG_OWNER, owner=owner
            )

    # The order moves first, the delivery row after: a crash in between leaves the
    # transaction open, and the next run does both again (the moves are idempotent).
    async def confirmed(self, order_id: str) -> None:
        await self.moves.confirm_delivery(order_id)
        await self.pool.execute(q("delivery_status"), order_id, "confirmed", None)
        self.stats.confirmed += 1

    async def failed(self, order_id: str, reason: str, failure: Failure, **detail: Any) -> None:
        await self.moves.fail_delivery(order_id, reason)
        await self.pool.execute(q("delivery_status"), order_id, "failed", reason)
        self.stats.failed += 1
        await self.alert(failure, order_id=order_id, reason=reason, **detail)

    async def requeue(self, order_id: str, reason: str, attempts_done: int) -> None:
        """Sign the delivery again under a new nonce, unless it was tried enough."""
        if attempts_done >= MAX_MINT_ATTEMPTS:
            await self.failed(order_id, reason, Failure.MINT_FAILED)
        else:
            await self.pool.execute(q("delivery_status"), order_id, "queued", reason)
            self.stats.requeued += 1

    async def _sign_and_send(self, jobs: list[Job], record: Any) -> None:
        if not jobs:
            return
        pending = await self.client.nonce(self.signer.address, "pending")
        head = await self.client.block(await self.client.head())
        tip = await self.client.priority_fee()
        fees = self.config.fees.first(head.base_fee if head else 0, tip)
        signed = await self.ledger.sign(jobs, pending, fees, record)
        await self.broadcast(signed)

    async def broadcast(self, txs: list[Tx]) -> None:
        """Send in nonce order, one at a time: a node may refuse a nonce ahead of a gap."""
        for tx in sorted(txs, key=lambda t: t.nonce):
            outcome, message = await self.client.send(tx.raw)
            if outcome in (Sent.ACCEPTED, Sent.KNOWN):
                await self.ledger.sent(tx)
            elif outcome is Sent.NONCE_AHEAD:
                tx.sent_at = None  # after the gap is filled
            elif outcome is Sent.UNDERPRICED:
                tx.sent_at = time.monotonic()  # the tracker bumps it
                tx.priced_at = 0.0
            elif outcome is Sent.NONCE_USED:
                tx.sent_at = time.monotonic()
                await self.tracker.nonce_used(tx)
            else:
                tx.sent_at = time.monotonic()
                await self.alert(Failure.TX_REFUSED, tx_hash=tx.tx_hash, message=message)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; true when ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


__all__ = ["ChainReset", "Deliverer", "DeliveryConfig", "Positions", "token_id_of"]
