"""The minter's transactions: the nonce manager and every transaction in flight.

Each nonce does one job (deploy a sale's contract, or mint one order's token).
A nonce is taken from ``chain_nonces`` under its row lock, in the same
PostgreSQL transaction that stores the signed transaction using it, so after
any crash every nonce we ever took has its signed bytes on record: a restart
rebroadcasts them as they are (no gap, no second transaction for a job), and a
gas bump signs the same job with the same nonce again (whichever version lands,
the job is done once). The next nonce is the larger of ours and the node's
pending count, so a key used elsewhere moves us forward instead of stalling.

`Ledger.open` mirrors the transactions still pending or mined but not yet
confirmed, by nonce; the deliverer is the only writer (an advisory lock).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import rlp
from eth_utils.address import to_checksum_address

from flashsale.chain.signer import Fees, Signer
from flashsale.store.queries import Queries

q = Queries("flashsale.chain")
Purpose = Literal["deploy", "mint"]


@dataclass(frozen=True, slots=True)
class Job:
    """What one nonce is for."""

    purpose: Purpose
    sale_id: str
    order_id: str | None
    to: str | None  # None: a deployment
    data: bytes
    gas: int


@dataclass
class Tx:
    nonce: int
    job: Job
    tx_hash: str
    raw: bytes
    fees: Fees
    hashes: list[str]
    status: Literal["pending", "mined"] = "pending"
    bumps: int = 0
    mined_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    succeeded: bool | None = None
    sent_at: float | None = None  # monotonic; None: not broadcast since it was signed/loaded
    priced_at: float = field(default_factory=time.monotonic)  # its fees were last set


def _age_to_monotonic(at: datetime | None) -> float | None:
    if at is None:
        return None
    return time.monotonic() - max(0.0, (datetime.now(UTC) - at).total_seconds())


OnSigned = Callable[[Any, Tx], Awaitable[None]]


class Ledger:
    def __init__(self, pool: Any, signer: Signer) -> None:
        self.pool = pool
        self.signer = signer
        self.chain_id = signer.chain_id
        self.sender = signer.address
        self.open: dict[int, Tx] = {}
        self.by_hash: dict[str, int] = {}

    def _key(self) -> tuple[int, str]:
        return self.chain_id, self.sender

    def _remember(self, tx: Tx) -> None:
        self.open[tx.nonce] = tx
        for h in tx.hashes:
            self.by_hash[h] = tx.nonce

    def _forget(self, tx: Tx) -> None:
        self.open.pop(tx.nonce, None)
        for h in tx.hashes:
            self.by_hash.pop(h, None)

    def in_flight(self, purpose: Purpose) -> int:
        return sum(1 for tx in self.open.values() if tx.job.purpose == purpose)

    async def load(self) -> None:
        """What a previous run left in flight; each is rechecked before it is trusted."""
        self.open.clear()
        self.by_hash.clear()
        for r in await self.pool.fetch(q("open_txs"), *self._key()):
            tx = Tx(
                nonce=int(r["nonce"]),
                job=Job(r["purpose"], r["sale_id"], r["order_id"], None, b"", 0),
                tx_hash=r["tx_hash"],
                raw=bytes(r["raw"]),
                fees=Fees(int(r["max_fee"]), int(r["priority_fee"])),
                hashes=list(r["hashes"]),
                status=r["status"],
                bumps=int(r["bumps"]),
                mined_hash=r["mined_hash"],
                block_number=r["block_number"],
                block_hash=r["block_hash"],
                succeeded=r["succeeded"],
                sent_at=None,  # rebroadcast unless found mined
                priced_at=_age_to_monotonic(r["sent_at"] or r["signed_at"]) or time.monotonic(),
            )
            self._remember(tx)

    async def sign(
        self, jobs: Sequence[Job], chain_pending: int, fees: Fees, on_signed: OnSigned
    ) -> list[Tx]:
        """Take a nonce for each job, sign, and store it with ``on_signed``'s writes, in one
        transaction; the caller broadcasts them after (in nonce order)."""
        if not jobs:
            return []
        signed: list[Tx] = []
        async with self.pool.acquire() as conn, conn.transaction():
            ours = int(await conn.fetchval(q("lock_nonce"), *self._key(), chain_pending))
            nonce = max(ours, chain_pending)
            for job in jobs:
                s = self.signer.sign(nonce, job.to, job.data, job.gas, fees)
                tx = Tx(nonce, job, s.tx_hash, s.raw, fees, [s.tx_hash])
                await conn.execute(
                    q("insert_tx"), *self._key(), nonce, job.purpose, job.sale_id,
                    job.order_id, s.tx_hash, s.raw, fees.max_fee, fees.priority_fee,
                )  # fmt: skip
                await on_signed(conn, tx)
                signed.append(tx)
                nonce += 1
            await conn.execute(q("set_nonce"), *self._key(), nonce)
        for tx in signed:
            self._remember(tx)
        return signed

    async def bumped(self, tx: Tx, fees: Fees) -> None:
        """Sign ``tx``'s job again with the same nonce and higher ``fees``."""
        job = tx.job
        to, data, gas = job.to, job.data, job.gas
        if not data:  # loaded after a restart: the job's call is in the signed bytes
            to, data, gas = _call_of(tx.raw)
        s = self.signer.sign(tx.nonce, to, data, gas, fees)
        await self.pool.execute(
            q("tx_bumped"), *self._key(), tx.nonce, s.tx_hash, s.raw, fees.max_fee,
            fees.priority_fee,
        )  # fmt: skip
        tx.tx_hash, tx.raw, tx.fees = s.tx_hash, s.raw, fees
        tx.hashes.append(s.tx_hash)
        tx.bumps += 1
        tx.priced_at = time.monotonic()
        tx.sent_at = time.monotonic()
        self.by_hash[s.tx_hash] = tx.nonce

    async def sent(self, tx: Tx) -> None:
        tx.sent_at = time.monotonic()
        await self.pool.execute(q("tx_sent"), *self._key(), tx.nonce)

    async def mined(
        self, tx: Tx, tx_hash: str, block_number: int, block_hash: str, ok: bool
    ) -> None:
        tx.status, tx.mined_hash, tx.succeeded = "mined", tx_hash, ok
        tx.block_number, tx.block_hash = block_number, block_hash
        await self.pool.execute(
            q("tx_mined"), *self._key(), tx.nonce, tx_hash, block_number, block_hash, ok
        )

    async def unmined(self, tx: Tx) -> None:
        tx.status, tx.mined_hash, tx.succeeded = "pending", None, None
        tx.block_number = tx.block_hash = None
        tx.sent_at = None  # broadcast again
        await self.pool.execute(q("tx_unmined"), *self._key(), tx.nonce)

    async def finished(self, tx: Tx, status: Literal["confirmed", "lost"]) -> None:
        await self.pool.execute(q("tx_finished"), *self._key(), tx.nonce, status)
        self._forget(tx)


def _call_of(raw: bytes) -> tuple[str | None, bytes, int]:
    """(to, data, gas) of a signed EIP-1559 transaction."""
    fields = rlp.decode(raw[1:])  # type 2: 0x02 || rlp([chainId, nonce, tip, max, gas, to, ...])
    to = bytes(fields[5])
    address = str(to_checksum_address(to)) if to else None
    return address, bytes(fields[7]), int.from_bytes(fields[4], "big")


__all__ = ["Job", "Ledger", "Purpose", "Tx"]
