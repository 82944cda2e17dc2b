"""Fixtures of the CLI tests: `flashsale` as a real process against the real services."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from flashsale.store import migrate

from ..conftest import delete_namespace, new_database


@dataclass
class Cli:
    """`flashsale` with the suite's services (a key namespace of its own, a migrated
    database) and a database without schema, and the name of one that does not exist."""

    env: dict[str, str]
    empty_database_url: str
    missing_database_url: str

    @property
    def database_url(self) -> str:
        return self.env["FLASHSALE_DATABASE_URL"]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flashsale.cli.main", *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="session")
def cli(redis_url: str, database_url: str, pg_admin_url: str) -> Iterator[Cli]:
    asyncio.run(migrate.upgrade(database_url))
    namespace = f"t{secrets.token_hex(5)}"
    base, _, _ = pg_admin_url.rpartition("/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")} | {
        "FLASHSALE_ENV": "dev",
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_NAMESPACE": namespace,
    }
    with new_database(pg_admin_url, "flashsale_empty") as empty:
        yield Cli(env, empty, f"{base}/flashsale_missing_{secrets.token_hex(4)}")
    asyncio.run(delete_namespace(redis_url, namespace))
