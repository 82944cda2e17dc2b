"""Automatic pipelining of script calls.

One awaited round trip per purchase costs redis-py ~40 µs of CPU and a
syscall pair; under a burst, thousands of purchases are queued on the event
loop at once. Every EVALSHA issued in the same loop turn is therefore packed
into one write on one connection and the replies are read back in order. Up
to ``max_in_flight`` batches travel at once, each on its own connection.

A NOSCRIPT reply (Redis restarted, SCRIPT FLUSH) means the script did not run:
it is loaded and those calls are sent again, transparently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import NoScriptError, ResponseError

from flashsale.engine.scripts import LuaScript

Arg = str | int | bytes
_Call = tuple[LuaScript, Sequence[Arg], Sequence[Arg], "asyncio.Future[Any]"]


class AutoPipeline:
    def __init__(self, client: Redis, *, max_batch: int = 512, max_in_flight: int = 4) -> None:
        self._client = client
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[_Call] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def evalsha(self, script: LuaScript, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        if len(keys) != script.num_keys:
            raise ValueError(f"{script.name} takes {script.num_keys} keys, got {len(keys)}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)
        return await future

    def _pump(self) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            await self._run(batch)
        except BaseException as exc:  # connection lost mid-batch: outcome unknown to callers
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._pump)

    async def _run(self, batch: list[_Call]) -> None:
        pool = self._client.connection_pool
        conn: Connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            replies = await self._roundtrip(conn, batch)
            missing = [
                call
                for call, reply in zip(batch, replies, strict=True)
                if isinstance(reply, NoScriptError)
            ]
            if missing:
                for script in {call[0] for call in missing}:
                    await self._client.script_load(script.source)
                retried = await self._roundtrip(conn, missing)
                replies = [reply for reply in replies if not isinstance(reply, NoScriptError)]
                answered = [call for call in batch if call not in missing] + missing
                replies += retried
            else:
                answered = batch
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        for (*_, future), reply in zip(answered, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    @staticmethod
    async def _roundtrip(conn: Connection, calls: Sequence[_Call]) -> list[Any]:
        commands = [
            ("EVALSHA", script.sha, script.num_keys, *keys, *args)
            for script, keys, args, _ in calls
        ]
        await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as error:  # one script's error; the rest still answer
                replies.append(error)
        return replies

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
