"""Drives the simulator's buyer and operator side: pay, faults, stats.

For tests, the demo and load tests; the server itself only ever uses
`flashsale.payments.provider`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from .faults import Faults
from .state import SimError
from .wire import ErrorBody, FaultsView, Health, Stats, TradeView

__all__ = ["PaysimControl"]

T = TypeVar("T")


def _faults_path(trade_no: str) -> str:
    return f"/trades/{quote(trade_no, safe='')}/faults"


class PaysimControl:
    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, trust_env=False
        )

    async def pay(self, pay_url: str) -> TradeView:
        """Play the buyer: POST the trade's pay_url. Raises SimError (e.g. trade_closed)."""
        return await self._call("POST", pay_url, TradeView)

    async def health(self) -> Health:
        return await self._call("GET", "/health", Health)

    async def stats(self) -> Stats:
        return await self._call("GET", "/stats", Stats)

    async def faults(self) -> Faults:
        return await self._call("GET", "/faults", Faults)

    async def set_faults(self, faults: Faults) -> Faults:
        return await self._call("PUT", "/faults", Faults, faults)

    async def trade_faults(self, trade_no: str) -> FaultsView:
        return await self._call("GET", _faults_path(trade_no), FaultsView)

    async def set_trade_faults(self, trade_no: str, faults: Faults | None) -> FaultsView:
        """Override one trade's faults; None returns it to the global set."""
        if faults is None:
            return await self._call("DELETE", _faults_path(trade_no), FaultsView)
        return await self._call("PUT", _faults_path(trade_no), FaultsView, faults)

    async def wait_idle(self, timeout_s: float = 30.0, poll_s: float = 0.05) -> Stats:
        """Wait until no callback is being delivered or waiting for a retry."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.stats()
            if stats.deliveries_in_flight == 0:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"{stats.deliveries_in_flight} deliveries still in flight")
            await asyncio.sleep(poll_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, url: str, into: type[T], body: Any = None) -> T:
        content = None if body is None else msgspec.json.encode(body)
        headers = None if content is None else {"Content-Type": "application/json"}
        response = await self._client.request(method, url, content=content, headers=headers)
        if response.status_code >= 400:
            try:
                error = msgspec.json.decode(response.content, type=ErrorBody)
            except msgspec.DecodeError:
                error = ErrorBody(code="http_error", detail=response.text[:200])
            raise SimError(response.status_code, error.code, error.detail)
        return msgspec.json.decode(response.content, type=into)
