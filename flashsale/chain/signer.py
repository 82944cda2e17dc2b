"""Signing the minter's transactions (EIP-1559), and what they pay.

Transactions are signed here and sent raw, never by the node: the nonce is
ours to choose (`ledger.Ledger`), and the same signed bytes can be broadcast
again and again without any chance of a second transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flashsale.settings import ConfigError

GWEI = 10**9
BUMP = 1.125  # nodes want a replacement to pay at least 10% more, in both fees


def load_key(key: str) -> LocalAccount:
    """The account of a private key (hex, 32 bytes); `ConfigError` names the variable."""
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError):
        raise ConfigError("FLASHSALE_CHAIN_KEY", "must be a private key: 32 bytes in hex") from None
    return account


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee: int
    priority_fee: int


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """New transactions pay twice the base fee plus the node's suggested tip; a stuck one
    is bumped by 12.5% (and to the current price when that is higher), up to `cap`.

    `start` overrides the first price (tests use a price below the base fee to get a
    transaction stuck)."""

    cap: int = 500 * GWEI
    start: Fees | None = None

    def first(self, base_fee: int, tip: int) -> Fees:
        if self.start is not None:
            return self.start
        return Fees(min(self.cap, 2 * base_fee + tip), min(tip, self.cap))

    def bumped(self, old: Fees, base_fee: int, tip: int) -> Fees | None:
        """The price of the replacement, or None when `old` is at the cap already."""
        if old.max_fee >= self.cap:
            return None
        new_tip = max(math.ceil(old.priority_fee * BUMP) + 1, tip)
        new_max = max(math.ceil(old.max_fee * BUMP) + 1, 2 * base_fee + new_tip)
        new_max = min(new_max, self.cap)
        return Fees(new_max, min(new_tip, new_max))


@dataclass(frozen=True, slots=True)
class Signed:
    tx_hash: str
    raw: bytes


class Signer:
    def __init__(self, account: LocalAccount, chain_id: int) -> None:
        self.account = account
        self.address: str = account.address
        self.chain_id = chain_id

    def sign(self, nonce: int, to: str | None, data: bytes, gas: int, fees: Fees) -> Signed:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "value": 0,
            "data": data,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
        }
        if to is not None:
            tx["to"] = to
        signed = self.account.sign_transaction(tx)
        return Signed("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction))


__all__ = ["GWEI", "FeePolicy", "Fees", "Signed", "Signer", "load_key"]
