"""Buyers' chain addresses: checked on the way in, stored in EIP-55 form.

An address is ``0x`` and 40 hex digits, in lower case (no checksum) or in
EIP-55 mixed case, whose checksum must hold: a typo in a checksummed address
is caught before a token goes to it. The zero address is refused (a token
minted there is lost).
"""

from __future__ import annotations

import re
from typing import Any

from flashsale.errors import ValidationFailed
from flashsale.store.queries import Queries

_SHAPE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_ZERO = "0x" + "0" * 40
q = Queries("flashsale.chain")


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"message": message, "key": "address", "source": "body"}]
    )


def checksummed(address: str) -> str:
    """EIP-55: each hex letter upper case where the Keccak-256 of the lower-case address
    has a nibble of 8 or more. (Here rather than eth_utils, whose import costs the API
    workers over a second.)"""
    from Crypto.Hash import keccak  # pycryptodome, with web3; loaded on first use

    digits = address[2:].lower()
    digest = keccak.new(digest_bits=256, data=digits.encode()).hexdigest()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(digits))


def parse_address(raw: str) -> str:
    """``raw`` in EIP-55 form; `ValidationFailed` (422) for anything else."""
    if not _SHAPE.match(raw):
        raise _refuse("address must be 0x followed by 40 hexadecimal digits")
    if raw.lower() == _ZERO:
        raise _refuse("the zero address cannot receive a token")
    address = checksummed(raw)
    if raw[2:] != raw[2:].lower() and raw != address:
        raise _refuse("address has a wrong EIP-55 checksum (or send it in lower case)")
    return address


async def set_address(pool: Any, user_id: str, raw: str) -> str:
    """Store ``user_id``'s address (checked); returns it in EIP-55 form."""
    address = parse_address(raw)
    await pool.execute(q("set_address"), user_id, address)
    return address


async def address_of(pool: Any, user_id: str) -> str | None:
    found: str | None = await pool.fetchval(q("get_address"), user_id)
    return found


__all__ = ["address_of", "checksummed", "parse_address", "set_address"]
