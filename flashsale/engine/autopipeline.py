"""Automatic pipelining of script calls.

One awaited round trip per purchase costs redis-py ~40 µs of CPU and a
syscall pair; under a burst, thousands of purchases are queued on the event
loop at once. Every EVALSHA issued in the same loop turn is therefore packed
into one write on one connection and the replies are read back in order. Up
to ``max_in_flight`` batches travel at once, each on its own connection.

A NOSCRIPT reply (Redis restarted, SCRIPT FLUSH) means the script did not run:
it is loaded and those calls are sent again, transparently. A connection
error fails the whole batch: those callers cannot know whether their script
ran, and must retry with the same idempotency key.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ResponseError

from flashsale.engine.resp import RespConnection, encode_command
from flashsale.engine.scripts import LuaScript

_Call = tuple[LuaScript, bytes, "asyncio.Future[Any]"]


class AutoPipeline:
    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 512,
        max_in_flight: int = 4,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self._url = url
        self._max_batch = max_batch
        self._idle: list[RespConnection] = [RespConnection(url) for _ in range(max_in_flight)]
        self._queue: list[_Call] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # durable mode: every batch ends with WAIT, so no caller hears "done"
        # before that many replicas hold the batch's writes
        self._wait = (
            encode_command(["WAIT", wait_replicas, wait_timeout_ms]) if wait_replicas else b""
        )
        self._wait_replicas = wait_replicas

    async def call(self, script: LuaScript, command: bytes) -> Any:
        """Run an EVALSHA already encoded by ``script_command`` and return its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, command, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)
        return await future

    def _pump(self) -> None:
        self._scheduled = False
        while self._queue and self._idle:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            task = asyncio.get_running_loop().create_task(self._send(self._idle.pop(), batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, conn: RespConnection, batch: list[_Call]) -> None:
        try:
            replies = await self._roundtrip(conn, batch)
            missing = [i for i, r in enumerate(replies) if _is_noscript(r)]
            if missing:
                retry = [batch[i] for i in missing]
                for script in {call[0] for call in retry}:
                    (loaded,) = await conn.roundtrip(
                        encode_command(["SCRIPT", "LOAD", script.source]), 1
                    )
                    if isinstance(loaded, ResponseError):
                        raise loaded
                for i, reply in zip(missing, await self._roundtrip(conn, retry), strict=True):
                    replies[i] = reply
        except BaseException as exc:
            await conn.close()
            for *_, future in batch:
                if not future.done():
                    future.set_exception(ConnectionError(f"Redis call failed: {exc!r}"))
            if not isinstance(exc, Exception):
                raise
        else:
            for (*_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        finally:
            self._idle.append(conn)
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._pump)

    async def _roundtrip(self, conn: RespConnection, batch: list[_Call]) -> list[Any]:
        payload = b"".join([command for _, command, _ in batch])
        if not self._wait:
            replies: list[Any] = await conn.roundtrip(payload, len(batch))
            return replies
        with_wait: list[Any] = await conn.roundtrip(payload + self._wait, len(batch) + 1)
        acked = with_wait.pop()
        if isinstance(acked, int) and acked < self._wait_replicas:
            raise ConnectionError(f"only {acked} of {self._wait_replicas} replicas acknowledged")
        return with_wait

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self._idle:
            await conn.close()


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")
