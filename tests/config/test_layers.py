"""The import graph is a line (README, "Development"): a part of ``flashsale/`` imports only
the parts listed above it, never below, and no modules import each other in a circle.

Every import counts, a deferred one inside a function or under ``TYPE_CHECKING`` too:
it ties the two modules together all the same. Pure reading of the source (``ast``).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(importlib.import_module("flashsale").__file__ or "").parent
README = ROOT.parent / "README.md"
# A line of the README's tree under ``flashsale/``: "    engine/   the Redis contract ...".
_ENTRY = re.compile(r"^    (?P<name>\w+)(?:/|\.py)\s")


def listed_order() -> list[str]:
    """The parts of ``flashsale/`` in the README's order, bottom (imported by all) first."""
    text = README.read_text(encoding="utf-8")
    tree = text[text.index("## Development") :]
    tree = tree[tree.index("  flashsale/\n") : tree.index("  tests/")]
    return [m["name"] for line in tree.splitlines() if (m := _ENTRY.match(line))]


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every ``flashsale`` module the file imports, wherever it does."""
    package = module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package up
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # ``from pkg import mod`` imports the submodule; else the name lives in ``base``.
            subs = [f"{base}.{alias.name}" for alias in node.names]
            names = [sub if sub in MODULES else base for sub in subs]
        else:
            continue
        for name in names:
            if name == "flashsale" or name.startswith("flashsale."):
                yield node.lineno, name


def part_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_the_readme_lists_every_part_once() -> None:
    order = listed_order()
    parts = {p.stem for p in ROOT.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    parts |= {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert len(order) == len(set(order)), f"listed twice: {order}"
    assert set(order) == parts, (
        f"README's Development tree misses {sorted(parts - set(order))}, "
        f"lists what is not there {sorted(set(order) - parts)}"
    )


def test_no_import_runs_back_up() -> None:
    rank = {part: i for i, part in enumerate(listed_order())}
    upward: list[str] = []
    for module, path in MODULES.items():
        here = part_of(module)
        for line, target in imported(path):
            there = part_of(target)
            if here and there and rank[there] > rank[here]:
                where = f"{path.relative_to(ROOT.parent)}:{line}"
                upward.append(f"{where}: {here} imports {target}, listed below it")
    assert not upward, "\n".join(upward)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, set()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part: list[str] = []
            while not part or part[-1] != node:
                part.append(stack.pop())
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("part", sorted({part_of(m) for m in MODULES} - {""}))
def test_no_circle_of_imports(part: str) -> None:
    graph = {
        module: {target for _, target in imported(path) if target != module}
        for module, path in MODULES.items()
        if part_of(module) == part
    }
    assert not circles(graph), f"modules of {part} that import each other: {circles(graph)}"
