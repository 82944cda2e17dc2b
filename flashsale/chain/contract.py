"""The sale's ERC-721 contract: its compiled artifact and the calls the deliverer encodes.

The artifact (``artifacts/FlashsaleDrop.json``: ABI and bytecode) is compiled
from ``contracts/FlashsaleDrop.sol`` by the pinned solc-js (``node/compile.cjs``,
see ``artifacts/README.md``); a test recompiles it and compares. Calls are
ABI-encoded here once per delivery, without a provider.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import rlp
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

ARTIFACT = "FlashsaleDrop.json"
DEPLOY_GAS = 1_500_000  # the deployment used 971,377 gas on hardhat
MINT_GAS = 150_000  # a mint to a new owner uses about 69,000

_MINT = function_signature_to_4byte_selector("mint(address,uint256)")
_OWNER_OR_ZERO = function_signature_to_4byte_selector("ownerOrZero(uint256)")


@cache
def artifact() -> dict[str, Any]:
    text = resources.files("flashsale.chain").joinpath("artifacts", ARTIFACT).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def abi() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = artifact()["abi"]
    return found


def deploy_data(name: str, symbol: str) -> bytes:
    """Creation code plus the constructor's arguments: the data of a deployment."""
    bytecode = bytes.fromhex(artifact()["bytecode"].removeprefix("0x"))
    return bytecode + encode(["string", "string"], [name, symbol])


def mint_data(to: str, token_id: int) -> bytes:
    return _MINT + encode(["address", "uint256"], [to, token_id])


def token_owner_data(token_id: int) -> bytes:
    return _OWNER_OR_ZERO + encode(["uint256"], [token_id])


def contract_address(sender: str, nonce: int) -> str:
    """Where ``sender``'s deployment with ``nonce`` lands (known before it is mined)."""
    raw = rlp.encode([bytes.fromhex(sender.removeprefix("0x")), nonce])
    return str(to_checksum_address(keccak(raw)[12:]))


def symbol_for(sale_id: str) -> str:
    """The token symbol: ``FS-`` and the sale id's first letters, upper case."""
    return "FS-" + sale_id[:8].upper()


__all__ = [
    "DEPLOY_GAS",
    "MINT_GAS",
    "abi",
    "artifact",
    "contract_address",
    "deploy_data",
    "mint_data",
    "symbol_for",
    "token_owner_data",
]
