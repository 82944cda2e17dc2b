"""The keyed permutation behind random assignment, mirrored from lua/includes/pool.lua.

Anyone holding a closed sale's revealed key recomputes which serial every
draw had to give: draw ``j`` of segment ``k`` is ``permute(j, size, f"{key}:{k}")``.
"""

from __future__ import annotations

import hashlib
import secrets


def feistel(x: int, half_bits: int, key: str) -> int:
    half = 1 << half_bits
    left, right = divmod(x, half)
    for round_no in range(1, 5):
        digest = hashlib.sha1(f"{key}:{round_no}:{right}".encode()).hexdigest()
        f = int(digest[:8], 16) % half
        left, right = right, (left + f) % half
    return left * half + right


def permute(x: int, size: int, key: str) -> int:
    """A bijection of ``range(size)``: Feistel over 4**b >= size, cycle-walked into range."""
    if not 0 <= x < size:
        raise ValueError("x must be in range(size)")
    half_bits = 1
    while 4**half_bits < size:
        half_bits += 1
    x = feistel(x, half_bits, key)
    while x >= size:
        x = feistel(x, half_bits, key)
    return x


def permutation(size: int, key: str) -> list[int]:
    """``[permute(x, size, key) for x in range(size)]``, fast: the round function takes
    only ``half`` values per round (``right`` < half ~ sqrt(size)), so it is tabled
    once (4 x half hashes instead of ~8 per element), and what is left is arithmetic.
    Used where a whole segment is permuted at once (a bucketed list's shares)."""
    half_bits = 1
    while 4**half_bits < size:
        half_bits += 1
    half = 1 << half_bits
    rounds = [
        [
            int(hashlib.sha1(f"{key}:{r}:{right}".encode()).hexdigest()[:8], 16) % half
            for right in range(half)
        ]
        for r in range(1, 5)
    ]

    def once(x: int) -> int:
        left, right = divmod(x, half)
        for table in rounds:
            left, right = right, (left + table[right]) % half
        return left * half + right

    out = []
    for x in range(size):
        x = once(x)
        while x >= size:
            x = once(x)
        out.append(x)
    return out


def new_key() -> str:
    return secrets.token_hex(16)


def commitment(key: str) -> str:
    """Published from creation; the key itself only once the sale is closed."""
    return hashlib.sha256(key.encode()).hexdigest()
