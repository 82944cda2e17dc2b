"""Load-test fixtures: a real ``flashsale serve --with-workers`` for one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import load_server


@pytest.fixture
def served(
    redis_url: str, own_database_url: str, namespace: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], str]]:
    """The server's environment and URL, on a database of its own: its deliverer records
    its local chain's genesis there, which the next test's chain must not find."""
    with load_server(redis_url, own_database_url, namespace, tmp_path / "server.log") as found:
        yield found
