"""Random hex strings for order ids, drawn from the OS's CSPRNG a page at a time.

``secrets.token_hex`` makes one ``getrandom`` system call per id: ~2 % of an API
worker's CPU per purchase. The same bytes read 4 KiB at a time cost one call per 400
ids and are as unpredictable. The buffer is dropped in a forked child (an at-fork hook,
not a pid check per id: ``getpid`` is a system call too), so two processes never hand
out the same bytes.
"""

from __future__ import annotations

import os

PAGE = 4096


class RandomHex:
    """``token_hex(n)`` from a buffer of ``os.urandom`` bytes."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self._buffer, self._at = b"", 0

    def token_hex(self, nbytes: int) -> str:
        end = self._at + nbytes
        if end > len(self._buffer):
            self._buffer, self._at = os.urandom(max(PAGE, nbytes)), 0
            end = nbytes
        chunk = self._buffer[self._at : end]
        self._at = end
        return chunk.hex()


_shared = RandomHex()
os.register_at_fork(after_in_child=_shared.forget)
token_hex = _shared.token_hex
