"""Random hex strings for order ids, drawn from the OS's CSPRNG a page at a time.

``secrets.token_hex`` makes one ``getrandom`` system call per id: ~2 % of an API
worker's CPU per purchase. The same bytes read 4 KiB at a time cost one call per 400
ids and are as unpredictable. The buffer is dropped in a forked child (and checked
against the pid), so two processes never hand out the same bytes.
"""

from __future__ import annotations

import os

PAGE = 4096


class RandomHex:
    """``token_hex(n)`` from a buffer of ``os.urandom`` bytes."""

    def __init__(self) -> None:
        self._buffer = b""
        self._at = 0
        self._pid = os.getpid()

    def forget(self) -> None:
        self._buffer, self._at, self._pid = b"", 0, os.getpid()

    def token_hex(self, nbytes: int) -> str:
        end = self._at + nbytes
        if end > len(self._buffer) or self._pid != os.getpid():
            self.forget()
            self._buffer = os.urandom(max(PAGE, nbytes))
            end = nbytes
        chunk = self._buffer[self._at : end]
        self._at = end
        return chunk.hex()


_shared = RandomHex()
os.register_at_fork(after_in_child=_shared.forget)
token_hex = _shared.token_hex
