"""The Lua scripts keep their documented shape."""

from __future__ import annotations

import re
from importlib import resources

from flashsale.engine import scripts
from flashsale.engine.models import ORDER_FIELDS


def test_order_fields_mirror_the_lua_layout() -> None:
    source = resources.files("flashsale.lua").joinpath("includes/order.lua").read_text()
    block = source[
        source.index("ORDER_FIELDS = {") : source.index("}", source.index("ORDER_FIELDS"))
    ]
    assert tuple(re.findall(r"'(\w+)'", block)) == ORDER_FIELDS


def test_every_script_documents_its_keys_and_arguments() -> None:
    for entry in resources.files("flashsale.lua").iterdir():
        if not entry.name.endswith(".lua"):
            continue
        name = entry.name.rpartition("-")[0]
        script = scripts.load(name)
        header = script.source[: script.source.index("]]")]
        documented = set(map(int, re.findall(r"KEYS\[(\d+)\]", header)))
        assert documented == set(range(1, script.num_keys + 1)), entry.name
        assert "ARGV[1]" in header and "Replies" in header, entry.name
        assert "--@include" not in script.source  # all includes inlined


def test_the_engine_runs_every_script_in_lua() -> None:
    """The engine owns the whole Redis contract: no script of lua/ is run from elsewhere."""
    from flashsale.engine.engine import SCRIPTS

    names = {
        entry.name.rpartition("-")[0]
        for entry in resources.files("flashsale.lua").iterdir()
        if entry.name.endswith(".lua")
    }
    assert names == set(SCRIPTS)
