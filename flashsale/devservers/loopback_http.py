"""A tiny HTTP/1.1 server on a loopback port, in the caller's own event loop.

For tests that play the other side of a conversation, such as the merchant's
callback endpoint the payment simulator posts to: a subclass answers each request
in `handle()`. Keep-alive aware; request bodies by Content-Length only (no chunked
uploads), which is all an HTTP client sends for a small JSON or form body."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

from flashsale.devservers.ports import HOST


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    """Lower-cased names, as a web framework would show them."""
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"


class LoopbackHTTPServer:
    """`start()` listens on a free loopback port (see `url`); `stop()` closes it
    along with every open connection."""

    def __init__(self) -> None:
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, request: Request) -> Response:
        raise NotImplementedError

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)  # bound at once: no race
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{HOST}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                response = await self.handle(request)
                writer.write(
                    f"HTTP/1.1 {response.status} {_reason(response.status)}\r\n"
                    f"Content-Type: {response.content_type}\r\n"
                    f"Content-Length: {len(response.body)}\r\n\r\n".encode()
                    + response.body
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection, None once the client has closed it."""
    request_line = await reader.readline()
    if not request_line:
        return None
    method, target, _version = request_line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body)
