"""What the HTTP workers share for their lifetime, on ``app.state["app_state"]``.

Built once per worker in the lifespan: the engine (Redis pool and its
auto-pipeline), the optional asyncpg pool and the PaymentService on it, the
token verifier, the sold-out short-circuit and the per-sale outcome counters
that ``flashsale sale watch`` reads from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis, RedisCluster

from flashsale import logs
from flashsale.api import metrics
from flashsale.api.clientip import ClientAddress
from flashsale.api.ratelimit import IpRateLimiter
from flashsale.api.tokens import TokenVerifier
from flashsale.engine.engine import Engine
from flashsale.engine.keys import SaleKeys
from flashsale.payments.errors import PaymentsUnavailable
from flashsale.payments.service import PaymentService
from flashsale.settings import SOLD_OUT_CACHE_MAX_S, Settings

STATS_TTL_S = 7 * 86_400


def stats_key(namespace: str, sale_id: str) -> str:
    """Per-sale purchase outcome counters (hash: ``created``, ``replayed``, ``rej:<code>``).

    The name is ``SaleKeys.stats`` (engine/keys.py); this stays for callers that
    have a namespace rather than an engine (``flashsale sale watch``).
    """
    key: str = SaleKeys(namespace, sale_id).stats
    return key


class SoldOutCache:
    """Per-worker memory of sold-out sales, each entry at most ``ttl_s`` (≤ 1 s) old.

    The deadline counts from the moment the purchase that saw ``sold_out`` was
    *sent*, so the answer given from memory is never staler than ``ttl_s``,
    whatever the Redis round trip took.
    """

    def __init__(self, ttl_s: float = SOLD_OUT_CACHE_MAX_S, *, max_sales: int = 10_000) -> None:
        self.ttl_s = min(ttl_s, SOLD_OUT_CACHE_MAX_S)
        self._until: dict[str, float] = {}
        self._max_sales = max_sales

    def hit(self, sale_id: str, now: float) -> bool:
        until = self._until.get(sale_id)
        if until is None:
            return False
        if now < until:
            return True
        del self._until[sale_id]
        return False

    def remember(self, sale_id: str, asked_at: float) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._until) >= self._max_sales:
            self._until.clear()
        self._until[sale_id] = asked_at + self.ttl_s

    def forget(self, sale_id: str) -> None:
        self._until.pop(sale_id, None)


class SaleStats:
    """Purchase outcomes counted in memory, added to Redis once a second (one pipeline)."""

    def __init__(self, redis: Redis | RedisCluster, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self._counts: Counter[tuple[str, str]] = Counter()

    def count(self, sale_id: str, outcome: str) -> None:
        self._counts[(sale_id, outcome)] += 1

    async def flush(self) -> None:
        if not self._counts:
            return
        counts, self._counts = self._counts, Counter()
        pipe = self._redis.pipeline(transaction=False)
        sales = set()
        for (sale_id, outcome), n in counts.items():
            key = stats_key(self._namespace, sale_id)
            pipe.hincrby(key, outcome, n)
            sales.add(key)
        for key in sales:
            pipe.expire(key, STATS_TTL_S)
        try:
            await pipe.execute()
        except Exception:  # Redis away: keep the counts for the next flush
            self._counts.update(counts)

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()


def own_url(scope: Mapping[str, Any]) -> str | None:
    """``scheme://host:port`` of the socket a request arrived on (ASGI ``server``)."""
    server = scope.get("server")
    if not server or len(server) != 2 or server[1] is None:  # unix socket, or not given
        return None
    host, port = str(server[0]), int(server[1])
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{host}:{port}"


@dataclass
class AppState:
    """One worker's state bag (``app.state["app_state"]``), opened and closed by the lifespan."""

    settings: Settings
    engine: Engine
    tokens: TokenVerifier
    sold_out: SoldOutCache
    stats: SaleStats
    pg_pool: Any | None = None  # asyncpg.Pool when FLASHSALE_DATABASE_URL is set
    payments: PaymentService | None = None  # on pg_pool, when it is set
    limiter: IpRateLimiter | None = None  # when FLASHSALE_IP_RATE_PER_S is set
    client_ip: ClientAddress = field(default_factory=lambda: ClientAddress(()))
    started_at: float = field(default_factory=time.time)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _own_url_known: bool = False

    def payment_service(self, scope: Mapping[str, Any]) -> PaymentService:
        """The worker's PaymentService; 503 ``payments_unavailable`` without PostgreSQL.

        Callbacks go to FLASHSALE_PUBLIC_URL; unset, to the server's own address,
        taken once from the first request's ASGI ``server`` (the local socket the
        request arrived on, never the client-controlled Host header).
        """
        service = self.payments
        if service is None:
            raise PaymentsUnavailable("payments need FLASHSALE_DATABASE_URL")
        if not self.settings.api.public_url and not self._own_url_known:
            own = own_url(scope)
            if own is not None:
                service.settings = replace(service.settings, public_url=own)
                self._own_url_known = True
        return service

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.stats.run()))
        self._tasks.append(asyncio.create_task(logs.flush_access_every()))
        self._tasks.append(asyncio.create_task(metrics.flush_every()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.stats.flush()
        metrics.flush()
        logs.flush_access()
