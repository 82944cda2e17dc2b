"""Automatic pipelining of script calls, with a deadline per call and a bounded queue.

One awaited round trip per purchase costs redis-py ~40 µs of CPU and a
syscall pair; under a burst, thousands of purchases are queued on the event
loop at once. Every EVALSHA issued in the same loop turn is therefore packed
into one write on one connection and the replies are read back in order. Up
to ``max_in_flight`` batches travel at once, each on its own connection.

Every caller gets the truth about its own call (engine/transport.py):

- its script's reply whenever that reply came, whatever happened to the
  rest of the batch (a later reply lost, a script reload that failed, a WAIT
  that came back short: those scripts ran, and their callers are told so);
- ``CallNotSent`` when its call was never written: the connection could not
  be made, the queue was full (``max_pending``), its deadline passed while it
  waited, or its script could not be reloaded after NOSCRIPT;
- ``ReplyLost`` only when it was written and its reply did not come.

A NOSCRIPT reply (Redis restarted, SCRIPT FLUSH) means the script did not run:
it is loaded and those calls are sent again, once. When a node lets a deadline
pass, it is presumed frozen: nothing more is written to it until a PING on a
connection of its own answers, and the calls waiting meanwhile fail at their
deadline without having been sent. Purchases recover by themselves once it
answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from redis.exceptions import ResponseError

from flashsale.engine.durability import DurabilityGuard
from flashsale.engine.resp import RespConnection, encode_command
from flashsale.engine.scripts import LuaScript
from flashsale.engine.transport import CallNotSent, ReplyLost, TransportOptions

log = logging.getLogger("flashsale.engine")

_PING = encode_command(["PING"])
_PROBE_PAUSE_S = 0.05  # between two probes of a node that refused or did not answer
_WAIT_MARGIN_S = 0.2  # WAIT's reply travels after its own timeout
_ALERT_EVERY_S = 1.0  # at most one log line per second about short WAITs


class _Call:
    __slots__ = ("command", "deadline", "future", "script")

    def __init__(
        self, script: LuaScript, command: bytes, future: asyncio.Future[Any], deadline: float
    ) -> None:
        self.script = script
        self.command = command
        self.future = future
        self.deadline = deadline


class AutoPipeline:
    def __init__(self, url: str, options: TransportOptions | None = None) -> None:
        self._url = url
        self._options = options = options or TransportOptions()
        self._guard = (
            DurabilityGuard(options.durability, warn=options.warn_durability)
            if options.durability == "durable"
            else None
        )
        self._idle: list[RespConnection] = [
            RespConnection(url, timeout_s=options.timeout_s, on_connect=self._guard)
            for _ in range(options.max_in_flight)
        ]
        self._address = self._idle[0].address
        self._queue: deque[_Call] = deque()
        self._pending = 0  # calls made and not yet answered (queued or in flight)
        self._scheduled = False
        self._sweep: asyncio.TimerHandle | None = None
        self._probe: asyncio.Task[None] | None = None  # set while the node is presumed frozen
        self._tasks: set[asyncio.Task[None]] = set()
        self._waits: dict[int, bytes] = {}
        self.short_waits = 0  # batches whose WAIT came back short (they ran all the same)
        self._alerted_at = 0.0

    @property
    def pending(self) -> int:
        return self._pending

    async def call(self, script: LuaScript, command: bytes, deadline: float | None = None) -> Any:
        """Run an EVALSHA already encoded by ``script_command`` and return its reply.

        ``deadline`` (event-loop time) defaults to now + ``timeout_ms``.
        """
        if self._pending >= self._options.max_pending:
            raise CallNotSent(f"{self._pending} calls already waiting for Redis at {self._address}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if deadline is None:
            deadline = loop.time() + self._options.timeout_s
        self._queue.append(_Call(script, command, future, deadline))
        self._pending += 1
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._pump)
        try:
            return await future
        finally:
            self._pending -= 1

    # -- dispatch ------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        if self._probe is None:
            now = loop.time()
            while self._queue and self._idle:
                batch: list[_Call] = []
                while self._queue and len(batch) < self._options.max_batch:
                    call = self._queue.popleft()
                    if call.future.done():
                        continue  # the caller went away
                    if call.deadline <= now:
                        _fail(call, CallNotSent(self._late(), timed_out=True))
                        continue
                    batch.append(call)
                if batch:
                    self._spawn(self._run(self._idle.pop(), batch))
        if self._queue and self._sweep is None:
            self._sweep = loop.call_at(self._queue[0].deadline, self._expire)

    def _expire(self) -> None:
        """Fail the calls still queued at their deadline: none of them was sent."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        queue = self._queue
        while queue and (queue[0].deadline <= now or queue[0].future.done()):
            _fail(queue.popleft(), CallNotSent(self._late(), timed_out=True))
        if queue:
            self._sweep = loop.call_at(queue[0].deadline, self._expire)

    def _late(self) -> str:
        state = "is not answering" if self._probe is not None else "is busy"
        return f"Redis at {self._address} {state}: the call was not sent before its deadline"

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one batch -----------------------------------------------------------------------

    async def _run(self, conn: RespConnection, batch: list[_Call]) -> None:
        try:
            # the node gets a whole deadline to answer a batch, from the moment it is taken
            # out of the queue (a call spends at most one deadline in each place)
            deadline = asyncio.get_running_loop().time() + self._options.timeout_s
            outcomes = await self._exchange(conn, batch, deadline)
            missing = [
                call for call, outcome in zip(batch, outcomes, strict=True) if _is_noscript(outcome)
            ]
            for call, outcome in zip(batch, outcomes, strict=True):
                if not _is_noscript(outcome):
                    _settle(call, outcome)
            if missing:
                await self._reload_and_resend(conn, missing, deadline)
        except BaseException as exc:  # a bug or a cancellation: nobody may hang, nor be
            for call in batch:  # told that a call which may have been written did nothing
                _fail(call, ReplyLost(f"the batch was abandoned: {exc!r}"))
            raise
        finally:
            self._idle.append(conn)
            self._schedule()

    async def _exchange(
        self, conn: RespConnection, calls: list[_Call], deadline: float
    ) -> list[Any]:
        """Each call's outcome, in order: its reply, or the transport error it met."""
        wait = self._wait_command()
        try:
            await conn.send(b"".join([call.command for call in calls]) + wait, deadline)
            replies = await conn.read(len(calls), deadline)
        except (CallNotSent, ReplyLost) as exc:
            self._after_failure(exc)
            received = exc.received if isinstance(exc, ReplyLost) else []
            return [*received, *[exc] * (len(calls) - len(received))]
        if wait:
            await self._read_wait(conn, deadline, len(calls))
        return replies

    async def _reload_and_resend(
        self, conn: RespConnection, calls: list[_Call], deadline: float
    ) -> None:
        """Load the scripts NOSCRIPT named and send their calls again (once); a call whose
        script could not be loaded did not run."""
        resend: list[_Call] = []
        for script in {call.script for call in calls}:
            try:
                (loaded,) = await conn.roundtrip(
                    encode_command(["SCRIPT", "LOAD", script.source]), 1, deadline
                )
            except (CallNotSent, ReplyLost) as exc:
                self._after_failure(exc)
                loaded = exc
            if isinstance(loaded, BaseException):
                refused = CallNotSent(f"script {script.name} could not be loaded: {loaded}")
                for call in calls:
                    if call.script is script:
                        _fail(call, refused)
            else:
                resend.extend(call for call in calls if call.script is script)
        if not resend:
            return
        for call, outcome in zip(resend, await self._exchange(conn, resend, deadline), strict=True):
            if _is_noscript(outcome):
                outcome = CallNotSent(f"script {call.script.name} vanished again: {outcome}")
            _settle(call, outcome)

    # -- durability: WAIT per batch ---------------------------------------------------------

    def _wait_command(self) -> bytes:
        replicas = self._options.wait_replicas or (self._guard.wait_replicas if self._guard else 0)
        if not replicas:
            return b""
        command = self._waits.get(replicas)
        if command is None:
            command = self._waits[replicas] = encode_command(
                ["WAIT", replicas, self._options.wait_timeout_ms]
            )
        return command

    async def _read_wait(self, conn: RespConnection, deadline: float, calls: int) -> None:
        """WAIT's reply, after the scripts': short or lost, the scripts ran all the same, so
        their replies are delivered; the shortfall is an alert, never a failure."""
        wanted = self._options.wait_replicas or (self._guard.wait_replicas if self._guard else 0)
        loop = asyncio.get_running_loop()
        wait_deadline = max(deadline, loop.time() + self._options.wait_timeout_ms / 1000)
        try:
            (acked,) = await conn.read(1, wait_deadline + _WAIT_MARGIN_S)
        except ReplyLost as exc:
            acked = exc
            self._after_failure(exc)
        if isinstance(acked, int) and acked >= wanted:
            return
        self.short_waits += 1
        now = loop.time()
        if now - self._alerted_at >= _ALERT_EVERY_S:
            self._alerted_at = now
            log.error(
                "durability: WAIT %d at %s answered %r for a batch of %d calls (%d such "
                "batches so far); the scripts ran, their replies are delivered, but a "
                "fail-over now may lose them",
                wanted,
                self._address,
                acked,
                calls,
                self.short_waits,
            )

    # -- a node that lets deadlines pass ------------------------------------------------------

    def _after_failure(self, exc: CallNotSent | ReplyLost) -> None:
        if exc.timed_out and self._probe is None:
            log.warning(
                "Redis at %s missed a deadline: %s; holding calls until it answers",
                self._address,
                exc,
            )
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_answered())

    async def _probe_until_answered(self) -> None:
        conn = RespConnection(self._url, timeout_s=self._options.timeout_s)
        try:
            while True:
                try:
                    await conn.roundtrip(_PING, 1)
                    break  # any reply, even an error (LOADING): the node answers again
                except (CallNotSent, ReplyLost):
                    await asyncio.sleep(_PROBE_PAUSE_S)
            log.warning("Redis at %s answers again", self._address)
        finally:
            await conn.close()
            self._probe = None
            self._schedule()

    async def aclose(self) -> None:
        probe = self._probe
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        while self._queue:
            _fail(self._queue.popleft(), CallNotSent("the engine is closing"))
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self._idle:
            await conn.close()


def _is_noscript(outcome: Any) -> bool:
    return isinstance(outcome, ResponseError) and str(outcome).startswith("NOSCRIPT")


def _settle(call: _Call, outcome: Any) -> None:
    if call.future.done():
        return
    if isinstance(outcome, (CallNotSent, ReplyLost)):
        _fail(call, outcome)
    elif isinstance(outcome, ResponseError):
        call.future.set_exception(outcome)
    else:
        call.future.set_result(outcome)


def _fail(call: _Call, error: CallNotSent | ReplyLost) -> None:
    """A fresh exception per caller (one instance raised in many tasks would share a traceback)."""
    if not call.future.done():
        call.future.set_exception(type(error)(str(error), timed_out=error.timed_out))
