"""Load-test fixtures: a real ``flashsale serve --with-workers`` for one test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.conftest import new_database

from .servers import load_server


@pytest.fixture(scope="module")
def served(
    redis_url: str, pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], str]]:
    """The server's environment and URL, shared by a module's tests (each makes drops of
    its own, under run ids of their own): starting it, its chain node and workers takes
    ~20 s. Its database is its own: its deliverer records its local chain's genesis
    there, which the next module's chain must not find."""
    log = tmp_path_factory.mktemp("served") / "server.log"
    with (
        new_database(pg_admin_url, "flashsale_served") as database_url,
        load_server(redis_url, database_url, f"t{secrets.token_hex(5)}", log) as found,
    ):
        yield found
