"""Named SQL (``store/queries.py``, shared by store, payments and chain): every name the code asks
for exists, every query in the files is asked for, and each one prepares against the
migrated schema (PostgreSQL parses it, resolves every table, column and parameter type)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import asyncpg
import pytest

from flashsale.store.queries import load

PACKAGES = (
    "flashsale.store",
    "flashsale.payments",
    "flashsale.chain",
    "flashsale.orders",
    "flashsale.bench",
)
# A call of a package's loader, ``q("name")``; anything but a literal name is refused,
# so this scan sees every query the code can ask for.
_CALL = re.compile(r"\bq\(\s*(?P<literal>\"(?P<name>\w+)\")?")


_BOUND = re.compile(
    r"Queries\(\s*\"(?P<made>flashsale\.\w+)\"\s*\)"
    r"|from (?P<imported>flashsale\.\w+)\.queries import\b[^\n]*\bq\b"
)
ROOT = Path(importlib.import_module("flashsale").__file__ or "").parent


def _package_of_q(path: Path, text: str) -> str:
    """The package whose queries a file's ``q`` loads: the one it makes or imports ``q``
    from, else the package the file lives in."""
    bound = _BOUND.search(text)
    if bound:
        return str(bound["made"] or bound["imported"])
    return "flashsale." + path.relative_to(ROOT).parts[0]


def _names_used(package: str) -> dict[str, list[str]]:
    """Query name -> the places (anywhere in flashsale/) asking ``package`` for it."""
    used: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "q(" not in text or _package_of_q(path, text) != package:
            continue
        for match in _CALL.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            where = f"{path.name}:{line}"
            assert match["literal"], f"{where}: q() takes a literal query name"
            used.setdefault(match["name"], []).append(where)
    return used


ALL_QUERIES = [(package, name) for package in PACKAGES for name in sorted(load(package))]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_query_asked_for_exists_and_every_query_is_asked_for(package: str) -> None:
    used = _names_used(package)
    defined = set(load(package))
    missing = {name: places for name, places in used.items() if name not in defined}
    assert not missing, f"{package} asks for queries no .sql file defines: {missing}"
    unused = sorted(defined - set(used))
    assert not unused, f"{package} defines queries nothing asks for: {unused}"


@pytest.mark.parametrize(("package", "name"), ALL_QUERIES, ids=[n for _, n in ALL_QUERIES])
async def test_query_prepares_against_the_migrated_schema(
    migrated_database_url: str, package: str, name: str
) -> None:
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await conn.prepare(load(package)[name])
    finally:
        await conn.close()
