"""HTTP-only settings, read once from the environment next to the engine's ``Settings``.

The engine's ``Settings`` holds what every process needs (Redis, PostgreSQL,
JWT secret, the per-IP request rate); this holds what only the HTTP workers
need. Both come from the environment alone.
"""

from __future__ import annotations

import os

import msgspec

SOLD_OUT_CACHE_MAX_S = 1.0  # the contract: a cached sold-out answer is at most 1 s stale


class ApiSettings(msgspec.Struct, kw_only=True, frozen=True):
    max_body_bytes: int = 64 * 1024
    """Largest request body (bytes). A 1,000,000-serial list sale is created through the CLI."""
    trust_forwarded_for: bool = False
    """Take the client address from X-Forwarded-For (only behind a trusted proxy)."""
    bench_endpoints: bool = False
    """Expose POST /v1/bench/echo, the bare endpoint the HTTP bench compares against."""
    sold_out_cache_s: float = SOLD_OUT_CACHE_MAX_S
    redis_cluster: bool = False
    """FLASHSALE_REDIS_CLUSTER=1: FLASHSALE_REDIS_URL names a node of a Redis Cluster."""
    token_cache_size: int = 100_000
    redis_max_connections: int = 32

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ

        def flag(name: str) -> bool:
            return env.get(f"FLASHSALE_{name}", "").lower() in ("1", "true", "yes", "on")

        def number(name: str, default: float) -> float:
            value = env.get(f"FLASHSALE_{name}")
            return float(value) if value else default

        return cls(
            max_body_bytes=int(number("MAX_BODY_BYTES", 64 * 1024)),
            trust_forwarded_for=flag("TRUST_FORWARDED_FOR"),
            bench_endpoints=flag("BENCH_ENDPOINTS"),
            sold_out_cache_s=min(
                SOLD_OUT_CACHE_MAX_S, number("SOLD_OUT_CACHE_S", SOLD_OUT_CACHE_MAX_S)
            ),
            redis_cluster=flag("REDIS_CLUSTER"),
            token_cache_size=int(number("TOKEN_CACHE_SIZE", 100_000)),
            redis_max_connections=int(number("REDIS_MAX_CONNECTIONS", 32)),
        )
