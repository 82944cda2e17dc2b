"""Migrations: the chain gives the reference schema, runs once, and is safe from many runners."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flashsale.store import migrate

REFERENCE = Path(__file__).resolve().parents[2] / "flashsale" / "store" / "schema.sql"

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT rel.relname, con.conname, pg_get_constraintdef(con.oid)
        FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = rel.relnamespace WHERE n.nspname = 'public'
        ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' ORDER BY 1, 2""",
}

NewDb = Callable[[], Coroutine[Any, Any, str]]


@pytest.fixture
async def new_database(pg_admin_url: str) -> AsyncIterator[NewDb]:
    made: list[str] = []
    base, _, _ = pg_admin_url.rpartition("/")

    async def make() -> str:
        name = f"fs_mig_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(pg_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        made.append(name)
        return f"{base}/{name}"

    yield make
    conn = await asyncpg.connect(pg_admin_url)
    try:
        for name in made:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        return {k: [tuple(r) for r in await conn.fetch(sql)] for k, sql in CATALOG.items()}
    finally:
        await conn.close()


async def test_chain_equals_reference_schema(new_database: NewDb) -> None:
    chained, reference = await new_database(), await new_database()
    assert await migrate.upgrade(chained) == [m.version for m in migrate.migrations()]
    conn = await asyncpg.connect(reference)
    try:
        await conn.execute(REFERENCE.read_text())
    finally:
        await conn.close()
    a, b = await snapshot(chained), await snapshot(reference)
    for part in CATALOG:
        assert a[part] == b[part], part


async def test_upgrade_is_idempotent_and_safe_from_many_runners(new_database: NewDb) -> None:
    url = await new_database()
    results = await asyncio.gather(*(migrate.upgrade(url) for _ in range(4)))
    applied = [r for r in results if r]
    assert applied == [[m.version for m in migrate.migrations()]]
    assert await migrate.upgrade(url) == []
    assert await migrate.pending(url) == []
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            migrate.migrations()
        )
    finally:
        await conn.close()


async def test_upgrade_from_two_processes(new_database: NewDb) -> None:
    url = await new_database()
    code = (
        "import asyncio, sys; from flashsale.store import migrate; "
        "print(asyncio.run(migrate.upgrade(sys.argv[1])))"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, url, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = sorted([(await p.communicate())[0].decode().strip() for p in procs])
    assert all(p.returncode == 0 for p in procs)
    assert outs == sorted([str([m.version for m in migrate.migrations()]), "[]"])


async def test_a_changed_applied_migration_is_refused(new_database: NewDb) -> None:
    url = await new_database()
    await migrate.upgrade(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(migrate.MigrationError):
            await migrate.upgrade(conn)
    finally:
        await conn.close()
