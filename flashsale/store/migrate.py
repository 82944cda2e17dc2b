"""Plain SQL migrations applied in order (saq's ``init_db`` habit).

``store/migrations/NNNN_name.sql`` files are applied by number, each in one
transaction together with its row in ``schema_migrations``. A session-level
advisory lock serialises runners, so two processes running ``flashsale db
upgrade`` at once apply each migration exactly once; the second finds the work
done. An applied file whose text changed since is refused (checksum).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# pg_advisory_lock key: the first 8 bytes of sha1("flashsale.migrations"), as a signed bigint
LOCK_KEY = int.from_bytes(hashlib.sha1(b"flashsale.migrations").digest()[:8], "big", signed=True)

_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")

CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    pass


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    found: list[Migration] = []
    folder = resources.files("flashsale.store").joinpath("migrations")
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number: {versions}")
    return found


async def applied(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {int(r["version"]): str(r["checksum"]) for r in rows}


async def upgrade(dsn_or_conn: str | asyncpg.Connection) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call."""
    if isinstance(dsn_or_conn, str):
        conn: asyncpg.Connection = await asyncpg.connect(dsn_or_conn)
        try:
            return await _upgrade(conn)
        finally:
            await conn.close()
    return await _upgrade(dsn_or_conn)


async def _upgrade(conn: asyncpg.Connection) -> list[int]:
    done: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(CREATE_VERSIONS)
        have = await applied(conn)
        for migration in migrations():
            if migration.version in have:
                if have[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return done


async def pending(dsn: str) -> list[int]:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        have = await applied(conn)
    finally:
        await conn.close()
    return [m.version for m in migrations() if m.version not in have]
