"""Configuration from the environment alone (one small typed object, arq style)."""

from __future__ import annotations

import os

import msgspec

DEV_JWT_SECRET = "flashsale-dev-jwt-secret-change-me-in-production"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    redis_url: str | None = None
    database_url: str | None = None
    jwt_secret: str = DEV_JWT_SECRET
    namespace: str = "fs"
    paysim_url: str | None = None
    paysim_secret: str | None = None
    public_url: str | None = None
    ip_rate_per_s: float | None = None
    idempotency_ttl_s: int = 86_400
    redis_max_connections: int = 32

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"FLASHSALE_{name}")
            return value if value else None

        rate = get("IP_RATE_PER_S")
        return cls(
            redis_url=get("REDIS_URL"),
            database_url=get("DATABASE_URL"),
            jwt_secret=get("JWT_SECRET") or DEV_JWT_SECRET,
            namespace=get("NAMESPACE") or "fs",
            paysim_url=get("PAYSIM_URL"),
            paysim_secret=get("PAYSIM_SECRET"),
            public_url=get("PUBLIC_URL"),
            ip_rate_per_s=float(rate) if rate else None,
        )
