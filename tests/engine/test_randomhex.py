"""Order-id randomness read a page at a time: distinct, hex, and never shared by a fork."""

from __future__ import annotations

import os
import re

from flashsale.engine import randomhex
from flashsale.engine.engine import new_order_id


def test_ids_are_distinct_hex_across_many_pages() -> None:
    ids = [randomhex.token_hex(10) for _ in range(3 * randomhex.PAGE // 10)]
    assert all(re.fullmatch(r"[0-9a-f]{20}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert re.fullmatch(r"s1\.[0-9a-f]{20}", new_order_id("s1"))


def test_a_forked_child_never_hands_out_the_parents_bytes() -> None:
    randomhex.token_hex(10)  # the parent's buffer now holds the next ~400 ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids go to the parent, then it leaves at once
        os.close(read)
        os.write(write, " ".join(randomhex.token_hex(10) for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {randomhex.token_hex(10) for _ in range(50)}
    assert len(child) == 50 and len(parent) == 50
    assert not child & parent
