"""A minimal RESP2 connection for the purchase hot path.

redis-py spends most of a pipelined call in its generic command packer and in
a timeout context per reply. Here commands arrive pre-encoded (the constant
part of a sale's EVALSHA is encoded once), a batch goes out in one write, and
hiredis parses the replies straight into ``str``. Error replies come back as
``ResponseError`` values, in place, so one failed script never hides the
replies of the others in the batch.

Every exchange has a deadline, and its failures say whether anything was
written (engine/transport.py): a failure before the payload went out is
``CallNotSent``, one after it ``ReplyLost`` (with the replies that did come).
A connection that failed is dropped; the next exchange connects again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ResponseError

from flashsale.engine.transport import CallNotSent, ReplyLost

Arg = str | int | bytes
# Run on each new connection before it carries anything (the durability check):
# raising refuses the connection, and so every call that would have used it.
ConnectHook = Callable[["RespConnection"], Awaitable[None]]


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

    def __init__(
        self, url: str, *, timeout_s: float = 2.0, on_connect: ConnectHook | None = None
    ) -> None:
        self._url = urlparse(url)
        self._timeout_s = timeout_s
        self._on_connect = on_connect
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader(encoding="utf-8", replyError=ResponseError)

    @property
    def address(self) -> str:
        url = self._url
        return url.path if url.scheme == "unix" else f"{url.hostname}:{url.port or 6379}"

    def deadline(self) -> float:
        """The default deadline of an exchange started now (event-loop time)."""
        return asyncio.get_running_loop().time() + self._timeout_s

    async def _connect(self) -> None:
        url = self._url
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
        if self._on_connect is not None:
            await self._on_connect(self)

    def _stale(self) -> bool:
        """The server hung up (restart, timeout, CLIENT KILL) while the connection was idle."""
        assert self._reader is not None and self._writer is not None
        return self._writer.is_closing() or self._reader.at_eof()

    async def send(self, payload: bytes, deadline: float | None = None) -> None:
        """Write pre-encoded commands; connect first when needed.

        ``CallNotSent`` when nothing was written (no connection, the connection
        hook refused); ``ReplyLost`` once bytes may have left.
        """
        deadline = self.deadline() if deadline is None else deadline
        if self._writer is not None and self._stale():
            self.drop()
        if self._writer is None:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._connect()
            except Exception as exc:
                self.drop()
                raise CallNotSent(
                    f"no usable connection to Redis at {self.address}: {_describe(exc)}",
                    timed_out=isinstance(exc, TimeoutError) or getattr(exc, "timed_out", False),
                ) from exc
            except BaseException:
                self.drop()
                raise
        assert self._writer is not None
        try:
            self._writer.write(payload)
            async with asyncio.timeout_at(deadline):
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            self.drop()
            raise ReplyLost(
                f"sending to Redis at {self.address} failed: {_describe(exc)}",
                timed_out=isinstance(exc, TimeoutError),
            ) from exc
        except BaseException:
            self.drop()
            raise

    async def read(self, replies: int, deadline: float | None = None) -> list[Any]:
        """Read exactly ``replies`` replies, in order; ``ReplyLost`` (with those that came)
        when the deadline passes or the connection breaks first."""
        deadline = self.deadline() if deadline is None else deadline
        reader, parser = self._reader, self._parser
        out: list[Any] = []
        try:
            if reader is None:
                raise ConnectionError("not connected")
            async with asyncio.timeout_at(deadline):
                while len(out) < replies:
                    reply = parser.gets()
                    if reply is False:
                        data = await reader.read(1 << 16)
                        if not data:
                            raise ConnectionError("Redis closed the connection")
                        parser.feed(data)
                        continue
                    out.append(reply)
        except (OSError, TimeoutError, hiredis.ProtocolError) as exc:
            self.drop()
            raise ReplyLost(
                f"{replies - len(out)} of {replies} replies from Redis at {self.address} "
                f"did not come: {_describe(exc)}",
                timed_out=isinstance(exc, TimeoutError),
                received=out,
            ) from exc
        except BaseException:
            self.drop()
            raise
        return out

    async def roundtrip(
        self, payload: bytes, replies: int, deadline: float | None = None
    ) -> list[Any]:
        """Send pre-encoded commands, read exactly ``replies`` replies, in order."""
        deadline = self.deadline() if deadline is None else deadline
        await self.send(payload, deadline)
        return await self.read(replies, deadline)

    def drop(self) -> None:
        """Forget the connection at once (no waiting): its stream may be out of step."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer before the deadline"
    return str(exc) or type(exc).__name__
