"""Named SQL queries, loaded once from a package's ``queries/*.sql``.

A file holds several queries, each introduced by a ``-- name: <name>`` line.
Every package that keeps SQL (store, payments) reads it through this one
loader: ``Queries("flashsale.payments")("keep_payment")``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load(package: str) -> dict[str, str]:
    """Every query of ``<package>/queries/*.sql`` by name; a name defined twice is an error."""
    found: dict[str, str] = {}
    folder = resources.files(package).joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        parts = _HEADER.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in found:
                raise ValueError(f"query {name} defined twice in {package}")
            found[name] = body.strip()
    return found


class Queries:
    """The named queries of one package; calling it with a name gives the SQL text."""

    def __init__(self, package: str) -> None:
        self.package = package

    def __call__(self, name: str) -> str:
        return load(self.package)[name]


q = Queries("flashsale.store")
"""The store's own queries (``store/queries/*.sql``)."""
