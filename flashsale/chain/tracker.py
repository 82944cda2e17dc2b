"""Following the minter's transactions until they are final.

- **Mined**: every new block is read once (its transaction hashes) and matched
  against every hash we sent, gas bumps included; a match's receipt says
  whether it succeeded.
- **Confirmed**: FLASHSALE_CHAIN_CONFIRMATIONS blocks on (head − block + 1), if
  its block is still the chain's block at that height; otherwise it was
  **reorged** away and waits to be mined again (broadcast again as it is).
- **Dropped**: unmined after a while and unknown to the node: broadcast again.
  A node that answers "nonce too low" has mined *some* transaction with that
  nonce: ours (a version we did not see yet) or someone else's, in which case
  the job is signed again under a new nonce (`Deliverer.requeue`, which checks
  the chain first so a token is never minted twice).
- **Stuck**: known to the node but unmined after FLASHSALE_CHAIN_BUMP_AFTER_S:
  signed again, same nonce, fees raised 12.5% (up to the cap).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from flashsale.chain.failures import Failure
from flashsale.chain.ledger import Ledger, Tx
from flashsale.chain.rpc import ChainClient, Receipt
from flashsale.store.queries import Queries

log = logging.getLogger("flashsale.chain")
q = Queries("flashsale.chain")
MAX_BLOCKS_PER_TICK = 500
T = TypeVar("T")


class Host(Protocol):
    """What the tracker needs of the deliverer (`deliverer.Deliverer`)."""

    pool: Any
    client: ChainClient
    ledger: Ledger

    # a DeliveryConfig: confirmations, recheck_after_s, bump_after_s, fees
    @property
    def config(self) -> Any: ...

    async def alert(
        self, failure: Failure, *, order_id: str | None = None, tx_hash: str | None = None,
        **detail: Any,
    ) -> None: ...  # fmt: skip

    async def confirmed(self, order_id: str) -> None: ...

    async def settle_minted(self, order_id: str, owner: str, address: str, token: int) -> None: ...

    async def requeue(self, order_id: str, reason: str, attempts_done: int) -> None: ...

    async def broadcast(self, txs: list[Tx]) -> None: ...


class Tracker:
    def __init__(self, deliverer: Host) -> None:
        self.d = deliverer
        self.ledger = deliverer.ledger
        self.client = deliverer.client
        self.scanned = -1  # the last block read

    def reset(self, head: int) -> None:
        self.scanned = head

    async def track(self, head: int) -> None:
        if head < self.scanned:  # the chain went back (a reorg, a reverted snapshot)
            for tx in list(self.ledger.open.values()):
                if tx.status == "mined" and (tx.block_number or 0) > head:
                    await self._reorged(tx)
            self.scanned = head
        await self._scan(head)
        await self._confirm(head)
        await self._recheck_unmined()

    async def _scan(self, head: int) -> None:
        stop = min(head, self.scanned + MAX_BLOCKS_PER_TICK)
        if not self.ledger.by_hash:
            self.scanned = stop
            return
        numbers = range(self.scanned + 1, stop + 1)
        blocks = await gather_bounded([self.client.block(n) for n in numbers])
        ours: list[str] = []
        for block in blocks:
            if block is None:
                break  # not there yet (a node behind its own head): the rest next tick
            ours += block.tx_hashes & self.ledger.by_hash.keys()
            self.scanned = block.number
        receipts = await gather_bounded([self.client.receipt(h) for h in ours])
        for tx_hash, receipt in zip(ours, receipts, strict=True):
            tx = self.ledger.open.get(self.ledger.by_hash.get(tx_hash, -1))
            if tx is not None and receipt is not None:
                await self._mined(tx, receipt)

    async def _mined(self, tx: Tx, receipt: Receipt) -> None:
        if tx.status == "mined" and tx.block_hash == receipt.block_hash:
            return
        await self.ledger.mined(
            tx, receipt.tx_hash, receipt.block_number, receipt.block_hash, receipt.ok
        )

    async def _reorged(self, tx: Tx) -> None:
        await self.d.alert(Failure.TX_REORGED, order_id=tx.job.order_id, tx_hash=tx.mined_hash,
                           block=tx.block_number)  # fmt: skip
        await self.ledger.unmined(tx)

    async def _confirm(self, head: int) -> None:
        needed = self.d.config.confirmations
        due = [
            tx
            for tx in self.ledger.open.values()
            if tx.status == "mined" and head - (tx.block_number or head) + 1 >= needed
        ]
        numbers = sorted({tx.block_number for tx in due if tx.block_number is not None})
        blocks = await gather_bounded([self.client.block(n) for n in numbers])
        canonical = {n: (b.hash if b else None) for n, b in zip(numbers, blocks, strict=True)}
        for tx in sorted(due, key=lambda t: t.nonce):
            if canonical.get(tx.block_number or -1) != tx.block_hash:
                await self._reorged(tx)
                continue
            await self._final(tx)

    async def _final(self, tx: Tx) -> None:
        """A transaction with enough confirmations: its job is done, or failed."""
        job = tx.job
        if job.purpose == "deploy":
            status = "deployed" if tx.succeeded else "failed"
            await self.d.pool.execute(q("contract_status"), job.sale_id, status)
            if tx.succeeded:
                log.info("contract of sale %s deployed (nonce %d)", job.sale_id, tx.nonce)
            else:
                await self.d.alert(Failure.DEPLOY_FAILED, tx_hash=tx.mined_hash,
                                   sale_id=job.sale_id)  # fmt: skip
        else:
            assert job.order_id is not None
            if tx.succeeded:
                await self.d.confirmed(job.order_id)
            else:
                await self._reverted_mint(tx)
        await self.ledger.finished(tx, "confirmed")

    async def _reverted_mint(self, tx: Tx) -> None:
        """A reverted mint: the token may be minted already (by an earlier attempt)."""
        assert tx.job.order_id is not None
        row = await self.d.pool.fetchrow(q("delivery_to_retry"), tx.job.order_id)
        token = int(row["token_id"])
        owner = await self.client.owner_of(row["contract"], token)
        if owner is not None:
            await self.d.settle_minted(tx.job.order_id, owner, row["address"], token)
        else:
            await self.d.requeue(tx.job.order_id, "mint reverted", int(row["attempts"]))

    async def _recheck_unmined(self) -> None:
        now = time.monotonic()
        config = self.d.config
        stale = [
            tx
            for tx in self.ledger.open.values()
            if tx.status == "pending"
            and (tx.sent_at is None or now - tx.sent_at >= config.recheck_after_s)
        ]
        resend: list[Tx] = []
        for tx in sorted(stale, key=lambda t: t.nonce):
            receipt = await self._any_receipt(tx)
            if receipt is not None:  # mined in a block we did not read (while we were away)
                await self._mined(tx, receipt)
            elif tx.sent_at is not None and not await self.client.known(tx.tx_hash):
                await self.d.alert(Failure.TX_DROPPED, order_id=tx.job.order_id,
                                   tx_hash=tx.tx_hash)  # fmt: skip
                resend.append(tx)
            elif tx.sent_at is None:
                resend.append(tx)
            elif now - tx.priced_at >= config.bump_after_s:
                await self._bump(tx)
            else:
                tx.sent_at = now  # known, waiting: look again later
        await self.d.broadcast(resend)

    async def _any_receipt(self, tx: Tx) -> Receipt | None:
        for tx_hash in reversed(tx.hashes):
            receipt = await self.client.receipt(tx_hash)
            if receipt is not None:
                return receipt
        return None

    async def _bump(self, tx: Tx) -> None:
        head = await self.client.block(await self.client.head())
        tip = await self.client.priority_fee()
        fees = self.d.config.fees.bumped(tx.fees, head.base_fee if head else 0, tip)
        if fees is None:
            tx.sent_at = time.monotonic()  # at the cap: wait for the price to fall
            return
        old = tx.tx_hash
        await self.ledger.bumped(tx, fees)
        await self.d.alert(Failure.GAS_BUMPED, order_id=tx.job.order_id, tx_hash=tx.tx_hash,
                           replaces=old, max_fee=fees.max_fee)  # fmt: skip
        await self.d.broadcast([tx])

    async def nonce_used(self, tx: Tx) -> None:
        """The node says ``tx``'s nonce is mined: by one of our versions, or by a stranger."""
        receipt = await self._any_receipt(tx)
        if receipt is not None:
            await self._mined(tx, receipt)
            return
        await self.d.alert(Failure.NONCE_TAKEN, order_id=tx.job.order_id, tx_hash=tx.tx_hash,
                           nonce=tx.nonce)  # fmt: skip
        await self.ledger.finished(tx, "lost")
        if tx.job.purpose == "deploy":
            await self.d.pool.execute(q("forget_deploying_contract"), tx.job.sale_id)
        else:
            assert tx.job.order_id is not None
            row = await self.d.pool.fetchrow(q("delivery_to_retry"), tx.job.order_id)
            await self.d.requeue(tx.job.order_id, "nonce taken", int(row["attempts"]))


async def gather_bounded(calls: list[Coroutine[Any, Any, T]], limit: int = 16) -> list[T]:
    """Await ``calls`` with at most ``limit`` at once (JSON-RPC reads), results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


__all__ = ["Tracker", "gather_bounded"]
