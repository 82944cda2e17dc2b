"""Lua scripts: read from package data, includes inlined, registered once.

Scripts follow BullMQ's layout: ``lua/<transition>-<number of keys>.lua`` with
shared pieces in ``lua/includes/`` inlined at ``--@include <name>`` lines (also inside
a block: its functions are then created only when the block runs), so
Redis still sees one script per transition.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_INCLUDE = re.compile(r"^[ \t]*--@include (\w+)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    num_keys: int
    source: str
    sha: str


def _read(path: str) -> str:
    return resources.files("flashsale.lua").joinpath(path).read_text(encoding="utf-8")


def _inline(source: str, seen: frozenset[str] = frozenset()) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            raise ValueError(f"include cycle through {name}")
        return _inline(_read(f"includes/{name}.lua"), seen | {name})

    return _INCLUDE.sub(replace, source)


@cache
def load(name: str) -> LuaScript:
    """Load ``lua/<name>-<n>.lua``; the key count comes from the file name."""
    for entry in resources.files("flashsale.lua").iterdir():
        stem, _, rest = entry.name.rpartition("-")
        if stem == name and rest.endswith(".lua"):
            source = _inline(entry.read_text(encoding="utf-8"))
            sha = hashlib.sha1(source.encode()).hexdigest()
            return LuaScript(name=name, num_keys=int(rest[:-4]), source=source, sha=sha)
    raise FileNotFoundError(f"no Lua script named {name}")
