"""Where a script call goes: one server, or the node of a Redis Cluster owning the sale's slot.

Every key of a sale shares the ``{sale:<id>}`` hash tag, so each call has
exactly one slot. In a cluster each node gets its own AutoPipeline; the slot
map comes from CLUSTER SLOTS and is refreshed when a node answers MOVED, ASK,
TRYAGAIN or CLUSTERDOWN — all of them mean the script did not run, so the call
is sent again (a bounded number of times).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from redis.crc import key_slot
from redis.exceptions import ResponseError

from flashsale.engine.autopipeline import AutoPipeline
from flashsale.engine.resp import RespConnection, encode_command
from flashsale.engine.scripts import LuaScript

_REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")


class Router(Protocol):
    async def call(self, script: LuaScript, first_key: str, command: bytes) -> Any: ...

    async def aclose(self) -> None: ...


class SingleRouter:
    def __init__(self, url: str, *, wait_replicas: int = 0) -> None:
        self._pipeline = AutoPipeline(url, wait_replicas=wait_replicas)

    async def call(self, script: LuaScript, first_key: str, command: bytes) -> Any:
        return await self._pipeline.call(script, command)

    async def aclose(self) -> None:
        await self._pipeline.aclose()


class ClusterRouter:
    def __init__(self, url: str, *, wait_replicas: int = 0, max_redirects: int = 5) -> None:
        self._seed_url = url
        self._wait_replicas = wait_replicas
        self._max_redirects = max_redirects
        self._slots: list[str | None] = [None] * 16384  # slot -> "host:port" of its primary
        self._pipelines: dict[str, AutoPipeline] = {}
        self._refresh_lock = asyncio.Lock()
        self._loaded = False

    def _url_for(self, address: str) -> str:
        scheme, _, rest = self._seed_url.partition("://")
        auth = rest.rpartition("@")[0]
        return f"{scheme}://{auth + '@' if auth else ''}{address}"

    async def refresh(self) -> None:
        async with self._refresh_lock:
            addresses = [self._seed_url, *(self._url_for(a) for a in self._pipelines)]
            last: Exception | None = None
            for url in addresses:
                conn = RespConnection(url)
                try:
                    (slots,) = await conn.roundtrip(encode_command(["CLUSTER", "SLOTS"]), 1)
                except (OSError, ConnectionError) as exc:
                    last = exc
                    continue
                finally:
                    await conn.close()
                if isinstance(slots, ResponseError):
                    raise slots
                for start, end, primary, *_ in slots:
                    address = f"{primary[0]}:{primary[1]}"
                    self._slots[start : end + 1] = [address] * (end - start + 1)
                self._loaded = True
                return
            raise ConnectionError(f"no cluster node answered CLUSTER SLOTS: {last!r}")

    def _pipeline_for(self, slot: int) -> AutoPipeline:
        address = self._slots[slot]
        if address is None:
            raise ConnectionError(f"no node serves slot {slot}")
        pipeline = self._pipelines.get(address)
        if pipeline is None:
            pipeline = AutoPipeline(self._url_for(address), wait_replicas=self._wait_replicas)
            self._pipelines[address] = pipeline
        return pipeline

    async def call(self, script: LuaScript, first_key: str, command: bytes) -> Any:
        if not self._loaded:
            await self.refresh()
        slot = key_slot(first_key.encode())
        for attempt in range(self._max_redirects + 1):
            try:
                return await self._pipeline_for(slot).call(script, command)
            except ResponseError as error:
                if not str(error).startswith(_REDIRECTS) or attempt == self._max_redirects:
                    raise
                await asyncio.sleep(0.05 * attempt)
                await self.refresh()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        for pipeline in self._pipelines.values():
            await pipeline.aclose()
