"""Named SQL queries, loaded once from ``store/queries/*.sql``.

A file holds several queries, each introduced by a ``-- name: <name>`` line.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    found: dict[str, str] = {}
    folder = resources.files("flashsale.store").joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        parts = _HEADER.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in found:
                raise ValueError(f"query {name} defined twice")
            found[name] = body.strip()
    return found


def q(name: str) -> str:
    return queries()[name]
