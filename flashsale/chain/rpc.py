"""The chain as the deliverer sees it: the few JSON-RPC calls it makes, through web3.py.

Every call has a deadline and no hidden retries (web3's own are off): a node
that is down or hangs raises `ChainUnreachable`, and the deliverer decides when
to try again. A refused ``eth_sendRawTransaction`` is not an error here but a
`Sent` outcome, because each refusal means something different to a nonce
manager (already known, nonce used, nonce ahead, fee too low).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3Exception, Web3RPCError

from flashsale.chain.contract import token_owner_data

DEFAULT_TIMEOUT_S = 5.0
ZERO_ADDRESS = "0x" + "0" * 40


class ChainUnreachable(Exception):
    """The node did not answer in time (down, hanging, or not speaking JSON-RPC)."""


class Sent(StrEnum):
    """What became of one ``eth_sendRawTransaction``."""

    ACCEPTED = "accepted"
    KNOWN = "known"  # the node has this very transaction already
    NONCE_USED = "nonce_used"  # a transaction with this nonce is mined
    NONCE_AHEAD = "nonce_ahead"  # an earlier nonce is missing (nodes that cannot queue)
    UNDERPRICED = "underpriced"  # a replacement must pay more, or the fee is under the base fee
    REFUSED = "refused"  # anything else: the message is logged


_SEND_REFUSALS: tuple[tuple[str, Sent], ...] = (
    ("known transaction", Sent.KNOWN),
    ("already known", Sent.KNOWN),
    ("nonce too low", Sent.NONCE_USED),
    ("nonce too high", Sent.NONCE_AHEAD),
    ("underpriced", Sent.UNDERPRICED),
    ("too low for the next block", Sent.UNDERPRICED),
    ("less than block base fee", Sent.UNDERPRICED),
)


def classify_refusal(message: str) -> Sent:
    lowered = message.lower()
    for marker, outcome in _SEND_REFUSALS:
        if marker in lowered:
            return outcome
    return Sent.REFUSED


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    ok: bool  # status 1; a reverted transaction still used its nonce
    contract: str | None  # the address a deployment created


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    tx_hashes: frozenset[str]
    base_fee: int


def _hex(value: Any) -> str:
    return HexBytes(value).to_0x_hex()


class ChainClient:
    """One JSON-RPC endpoint; `close()` when done."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        provider = AsyncHTTPProvider(
            url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout_s)},
            exception_retry_configuration=None,
        )
        self.w3: AsyncWeb3[Any] = AsyncWeb3(provider)

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def _ask(self, call: Any) -> Any:
        try:
            return await call
        except (TransactionNotFound, BlockNotFound):
            raise
        except Web3RPCError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChainUnreachable(f"{self.url}: {type(exc).__name__} {exc}") from exc
        except Web3Exception as exc:  # a body that is not JSON-RPC, say
            raise ChainUnreachable(f"{self.url}: {exc}") from exc

    async def chain_id(self) -> int:
        return int(await self._ask(self.w3.eth.chain_id))

    async def head(self) -> int:
        return int(await self._ask(self.w3.eth.block_number))

    async def block(self, number: int) -> Block | None:
        try:
            block = await self._ask(self.w3.eth.get_block(number))
        except BlockNotFound:
            return None
        return Block(
            number=int(block["number"]),
            hash=_hex(block["hash"]),
            tx_hashes=frozenset(_hex(h) for h in block["transactions"]),
            base_fee=int(block.get("baseFeePerGas", 0)),
        )

    async def genesis_hash(self) -> str:
        block = await self.block(0)
        if block is None:
            raise ChainUnreachable(f"{self.url}: no genesis block")
        return block.hash

    async def priority_fee(self) -> int:
        try:
            return int(await self._ask(self.w3.eth.max_priority_fee))
        except Web3RPCError:
            return 10**9  # a node without eth_maxPriorityFeePerGas: 1 gwei

    async def nonce(self, address: str, block: str = "latest") -> int:
        """Transactions of ``address`` mined (``latest``) or known to the node (``pending``)."""
        return int(await self._ask(self.w3.eth.get_transaction_count(address, block)))  # type: ignore[arg-type]

    async def send(self, raw: bytes) -> tuple[Sent, str]:
        try:
            await self._ask(self.w3.eth.send_raw_transaction(raw))
        except Web3RPCError as exc:
            message = str(exc.message)
            return classify_refusal(message), message
        return Sent.ACCEPTED, ""

    async def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            r = await self._ask(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if r is None or r.get("blockNumber") is None:
            return None
        created = r.get("contractAddress")
        return Receipt(
            tx_hash=_hex(r["transactionHash"]),
            block_number=int(r["blockNumber"]),
            block_hash=_hex(r["blockHash"]),
            ok=int(r["status"]) == 1,
            contract=str(created) if created else None,
        )

    async def known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction at all (mined or in its pool)."""
        try:
            tx = await self._ask(self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return tx is not None

    async def has_code(self, address: str) -> bool:
        return len(await self._ask(self.w3.eth.get_code(address))) > 0  # type: ignore[arg-type]

    async def owner_of(self, contract: str, token_id: int) -> str | None:
        """The owner of a token, or None when it was never minted."""
        data = token_owner_data(token_id)
        raw = await self._ask(self.w3.eth.call({"to": contract, "data": data}))
        owner = self.w3.to_checksum_address("0x" + bytes(raw)[-20:].hex())
        return None if owner == self.w3.to_checksum_address(ZERO_ADDRESS) else owner


__all__ = ["Block", "ChainClient", "ChainUnreachable", "Receipt", "Sent", "classify_refusal"]
