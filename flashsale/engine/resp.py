"""A minimal RESP2 connection for the purchase hot path.

redis-py spends most of a pipelined call in its generic command packer and in
a timeout context per reply. Here commands arrive pre-encoded (the constant
part of a sale's EVALSHA is encoded once), a batch goes out in one write, and
hiredis parses the replies straight into ``str``. Error replies come back as
``ResponseError`` values, in place, so one failed script never hides the
replies of the others in the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ResponseError

Arg = str | int | bytes


def encode_arg(arg: Arg) -> bytes:
    if isinstance(arg, str):
        arg = arg.encode()
    elif isinstance(arg, int):
        arg = b"%d" % arg
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def encode_args(args: Sequence[Arg]) -> bytes:
    """The bulk strings of ``args``, without the array header."""
    return b"".join([encode_arg(arg) for arg in args])


def encode_command(args: Sequence[Arg]) -> bytes:
    return b"*%d\r\n" % len(args) + encode_args(args)


class RespConnection:
    """One TCP (or unix socket) connection speaking RESP2 to Redis."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        self._url = urlparse(url)
        self._connect_timeout_s = connect_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)

    async def _connect(self) -> None:
        url = self._url
        async with asyncio.timeout(self._connect_timeout_s):
            if url.scheme == "unix":
                self._reader, self._writer = await asyncio.open_unix_connection(url.path)
            else:
                self._reader, self._writer = await asyncio.open_connection(
                    url.hostname or "127.0.0.1", url.port or 6379
                )
        self._parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        setup: list[bytes] = []
        if url.password:
            user = unquote(url.username) if url.username else "default"
            setup.append(encode_command(["AUTH", user, unquote(url.password)]))
        db = (url.path or "/0").lstrip("/") if url.scheme != "unix" else "0"
        if db and db != "0":
            setup.append(encode_command(["SELECT", db]))
        if setup:
            for reply in await self.roundtrip(b"".join(setup), len(setup)):
                if isinstance(reply, ResponseError):
                    raise reply

    async def roundtrip(self, payload: bytes, replies: int) -> list[Any]:
        """Send pre-encoded commands, read exactly ``replies`` replies, in order."""
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(payload)
        await self._writer.drain()
        out: list[Any] = []
        parser = self._parser
        while len(out) < replies:
            reply = parser.gets()
            if reply is False:
                data = await self._reader.read(1 << 16)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                parser.feed(data)
                continue
            out.append(reply)
        return out

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
