"""A minimal HTTP/1.1 server that hands provider callbacks to PaymentService.handle_callback.

Stands in for the API's ``POST /v1/payments/callbacks/{provider}`` route so the
service's flow can be tested on its own; the route itself is tested through
the app once it is wired.
"""

from __future__ import annotations

import asyncio
import json

from flashsale.payments.service import PaymentService

PREFIX = "/v1/payments/callbacks/"


class CallbackServer:
    def __init__(self) -> None:
        self.service: PaymentService | None = None
        self.url = ""
        self.answers: dict[int, int] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, payload = 404, {"code": "not_found"}
                if method == "POST" and target.startswith(PREFIX) and self.service is not None:
                    answer = await self.service.handle_callback(
                        target[len(PREFIX) :], headers, body
                    )
                    status, payload = answer.status_code, answer.body
                self.answers[status] = self.answers.get(status, 0) + 1
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
