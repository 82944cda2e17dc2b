"""Where a script call goes: one server, or the node of a Redis Cluster owning the sale's slot.

Every key of a sale shares the ``{sale:<id>}`` hash tag, so each call has
exactly one slot. In a cluster each node gets its own AutoPipeline; the slot
map comes from CLUSTER SLOTS and is refreshed by itself:

- when a node answers MOVED, ASK, TRYAGAIN or CLUSTERDOWN: the script did not
  run, so the call is sent again after the refresh (a bounded number of times);
- when a call could not be sent to a node (connection refused or lost before
  writing, the node not answering): the node may have failed over, so the map
  is refreshed and the call, which did not run, is sent again;
- when a call's reply was lost: the map is refreshed for the calls that come
  next, but that call is not sent again (it may have run: the caller is told).

All of it within the call's one deadline. Pipelines of nodes that left the map
are closed; new nodes get a pipeline (and its connections) on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol

from redis.crc import key_slot
from redis.exceptions import ResponseError

from flashsale.engine.autopipeline import AutoPipeline
from flashsale.engine.codec import text
from flashsale.engine.resp import RespConnection, encode_command
from flashsale.engine.scripts import LuaScript
from flashsale.engine.transport import CallNotSent, ReplyLost, TransportOptions

_REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
_SLOTS = encode_command(["CLUSTER", "SLOTS"])


class Router(Protocol):
    async def call(self, script: LuaScript, first_key: str, command: bytes) -> Any: ...

    async def aclose(self) -> None: ...


class SingleRouter:
    def __init__(self, url: str, options: TransportOptions | None = None) -> None:
        self._pipeline = AutoPipeline(url, options)

    async def call(self, script: LuaScript, first_key: str, command: bytes) -> Any:
        return await self._pipeline.call(script, command)

    async def aclose(self) -> None:
        await self._pipeline.aclose()


class ClusterRouter:
    def __init__(
        self, url: str, options: TransportOptions | None = None, *, max_redirects: int = 5
    ) -> None:
        self._seed_url = url
        self._options = options or TransportOptions()
        self._max_redirects = max_redirects
        self._slots: list[str | None] = [None] * 16384  # slot -> "host:port" of its primary
        self._pipelines: dict[str, AutoPipeline] = {}
        self._refresh_lock = asyncio.Lock()
        self._generation = 0  # how many times the map was loaded
        # every node the last map named (replicas too): where to ask for the next map when
        # the seed and the primaries we talked to are gone (the seed's master was killed)
        self._nodes: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _url_for(self, address: str) -> str:
        scheme, _, rest = self._seed_url.partition("://")
        auth = rest.rpartition("@")[0]
        return f"{scheme}://{auth + '@' if auth else ''}{address}"

    async def refresh(
        self, deadline: float | None = None, *, seen: int | None = None, suspect: str = ""
    ) -> None:
        """Load the slot map from the first node that answers (``suspect`` asked last).

        ``seen``: the generation the caller's failure happened under; when the map
        was loaded since, another caller already refreshed it.
        """
        async with self._refresh_lock:
            if seen is not None and seen != self._generation:
                return
            known = dict.fromkeys(a for a in [*self._pipelines, *self._nodes] if a != suspect)
            addresses = [self._seed_url, *(self._url_for(a) for a in known)]
            if suspect:
                addresses.append(self._url_for(suspect))
            last: Exception | None = None
            for url in addresses:
                conn = RespConnection(url, timeout_s=self._options.timeout_s)
                try:
                    (slots,) = await conn.roundtrip(_SLOTS, 1, deadline)
                except (CallNotSent, ReplyLost) as exc:
                    last = exc
                    continue
                finally:
                    await conn.close()
                if isinstance(slots, ResponseError):
                    last = slots
                    continue
                self._load(slots)
                return
            raise CallNotSent(f"no cluster node answered CLUSTER SLOTS: {last}")

    def _load(self, slots: list[Any]) -> None:
        table: list[str | None] = [None] * 16384
        nodes: dict[str, None] = {}
        for start, end, primary, *replicas in slots:
            address = f"{text(primary[0])}:{int(primary[1])}"
            table[int(start) : int(end) + 1] = [address] * (int(end) - int(start) + 1)
            nodes.update(dict.fromkeys(f"{text(n[0])}:{int(n[1])}" for n in [primary, *replicas]))
        self._slots = table
        self._nodes = list(nodes)
        self._generation += 1
        serving = set(table)
        for address in [a for a in self._pipelines if a not in serving]:
            self._spawn(self._pipelines.pop(address).aclose())  # a node that left the map

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pipeline_for(self, slot: int) -> tuple[str, AutoPipeline]:
        address = self._slots[slot]
        if address is None:
            raise CallNotSent(f"no node serves slot {slot}")
        pipeline = self._pipelines.get(address)
        if pipeline is None:
            pipeline = AutoPipeline(self._url_for(address), self._options)
            self._pipelines[address] = pipeline
        return address, pipeline

    async def call(self, script: LuaScript, first_key: str, command: bytes) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.timeout_s
        if not self._generation:
            await self.refresh(deadline, seen=0)
        slot = key_slot(first_key.encode())
        for attempt in range(self._max_redirects + 1):
            seen, address = self._generation, ""
            try:
                address, pipeline = self._pipeline_for(slot)
                return await pipeline.call(script, command, deadline)
            except ResponseError as error:
                if not str(error).startswith(_REDIRECTS) or attempt == self._max_redirects:
                    raise
            except CallNotSent:
                if attempt == self._max_redirects or loop.time() >= deadline:
                    raise
            except ReplyLost:
                # not sent again (it may have run); the calls that follow find the new map
                self._spawn(self._refresh_quietly(seen, address))
                raise
            await asyncio.sleep(min(0.05 * attempt, max(0.0, deadline - loop.time())))
            await self.refresh(deadline, seen=seen, suspect=address)
        raise AssertionError("unreachable")

    async def _refresh_quietly(self, seen: int, suspect: str) -> None:
        with contextlib.suppress(CallNotSent):
            await self.refresh(seen=seen, suspect=suspect)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for pipeline in self._pipelines.values():
            await pipeline.aclose()
