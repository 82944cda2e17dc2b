"""Bucketed drops: one hot drop spread over B hash slots (docs/design.md, "Bucketed drops").

Bucket 0 is the sale's own slot (an unbucketed sale is bucket 0 of 1, unchanged); bucket
b > 0 is the slot ``<sale_id>.<b>`` (engine/keys.py). Every bucket has the sale's
settings, its own window of the one draw sequence, and the orders of the buyers whose
home it is. The engine's script calls live in engine.py; this module holds what they
share: the counters' sum, claims, the order in which other buckets are asked, the
holds of the per-IP limit across buckets.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from flashsale.engine.codec import text
from flashsale.engine.keys import bucket_slot
from flashsale.engine.permutation import permutation
from flashsale.engine.resp import Arg

# The meta fields a sale's counters are summed from (create_sale-6, take-5, place-8).
COUNTERS = ("total", "reserved", "sold", "lent", "borrowed")
# The settings a tune changes, copied from bucket 0 to the others (sync_settings-1).
SYNCED = ("status", "end_ms", "per_user_limit", "peak_user_limit", "per_ip_limit", "timeout_ms")
# A claim older than this (and older than 4 call deadlines) is a crash's leftover: the
# caller of take-5 gave up on place-8 long ago (its deadline is 2 call deadlines).
CLAIM_STALE_MS = 10_000


def slots(sale_id: str, buckets: int) -> list[str]:
    """Every slot of a sale, bucket 0 (the sale's own) first."""
    return [bucket_slot(sale_id, b) for b in range(buckets)]


def tune_key(change: Sequence[Arg], add: Sequence[Arg]) -> str:
    """A tune's content as a key (tune-5's ARGV[9]): the same change, retried, has the
    same key, so bucket 0 knows it landed already and the engine only syncs the rest."""
    blob = "\x1f".join(str(a) for a in [*change, "+", *add])
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def bucket_of_draw(draw: int, total: int, buckets: int) -> int:
    """The bucket whose window holds draw ``draw`` of a drop of ``total`` first draws
    (create_sale-6): bucket b > 0 draws ``[(b-1)s, bs)``, bucket 0 the tail from
    ``(B-1)s`` on, with ``s = total // B``."""
    share = total // buckets
    if draw >= (buckets - 1) * share:
        return 0
    return draw // share + 1


def list_shares(
    items: Sequence[str], buckets: int, chunk: int, assignment: str, key: str
) -> list[list[list[Arg]]]:
    """A bucketed drop's list cut for its buckets: for each bucket, for each segment of
    the list (``chunk`` serials each, numbered from 1 as creation adds them), the
    ``'s'`` segment spec of create_sale-6 / load_serials-5 holding only the items that
    draws of its window give. Draw ``d`` of segment ``k`` gives item ``permute(d - off,
    size, f"{key}:{k}")`` of it when random (lua/includes/pool.lua; here
    ``permutation.permutation``, the whole segment at once), item ``d - off``
    when sequential; each draw is in one window, so each item is stored once."""
    total = len(items)
    shares: list[list[list[Arg]]] = [[] for _ in range(buckets)]
    for number, off in enumerate(range(0, total, chunk), start=1):
        size = min(chunk, total - off)
        specs: list[list[Arg]] = [["s", total, off, size] for _ in range(buckets)]
        order = permutation(size, f"{key}:{number}") if assignment == "random" else range(size)
        for j, pos in enumerate(order):
            specs[bucket_of_draw(off + j, total, buckets)].extend((pos, items[off + pos]))
        for b in range(buckets):
            shares[b].append(specs[b])
    return shares


def lenders(home: int, buckets: int, rng: random.Random | None = None) -> list[int]:
    """The other buckets a buyer whose home is dry asks, each once, from a random one on
    (so the dry buckets' buyers spread over the rest instead of all hitting one)."""
    start = (rng or random).randrange(buckets)
    order = [(start + i) % buckets for i in range(buckets)]
    return [b for b in order if b != home]


def summed(rows: list[list[bytes | str | None]]) -> dict[str, str]:
    """The sale's counters from each bucket's COUNTERS (bucket 0 first): ``total`` is
    bucket 0's (its window ends at the sale's last draw); a serial lent and not yet
    placed (lent - borrowed over all buckets) counts as reserved, so that
    ``available = total - reserved - sold`` holds at every moment."""
    values = [[int(text(v)) if v is not None else 0 for v in row] for row in rows]
    reserved = sum(v[1] for v in values)
    in_flight = sum(v[3] for v in values) - sum(v[4] for v in values)
    return {
        "total": str(values[0][0]),
        "reserved": str(reserved + in_flight),
        "sold": str(sum(v[2] for v in values)),
    }


@dataclass(frozen=True, slots=True)
class Claim:
    """A serial lent by take-5 and not yet placed or given back."""

    order_id: str
    kind: str
    serial: str
    draw: int
    taken_ms: int
    home: str  # the slot where place-8 writes (and fence-2 fences) the order


def decode_claim(order_id: bytes | str, packed: bytes | str) -> Claim:
    raw = packed.encode() if isinstance(packed, str) else packed  # a client decoding replies
    kind, serial, draw, taken_ms, home = msgspec.msgpack.decode(raw)
    return Claim(text(order_id), str(kind), str(serial), int(draw), int(taken_ms), str(home))


def stale_after_ms(timeout_ms: int) -> int:
    """How old a claim must be before the sweeper takes it for a crash's leftover."""
    return max(CLAIM_STALE_MS, 4 * timeout_ms)


@dataclass(frozen=True, slots=True)
class IpHold:
    """An address's count held in its IP home bucket for one purchase (ip_hold-3)."""

    order_id: str
    deadline_ms: int  # the purchase's: past it (home's clock) the order never appears
    home: str  # the slot of the order (where ip_check-3 asks about it)


def decode_ip_hold(order_id: bytes | str, packed: bytes | str) -> IpHold:
    """A hold as ip_hold-3 stores it: msgpack {ip, deadline_ms, home slot}."""
    raw = packed.encode() if isinstance(packed, str) else packed  # a client decoding replies
    _, deadline_ms, home = msgspec.msgpack.decode(raw)
    return IpHold(text(order_id), int(deadline_ms), str(home))


def ip_holds(entries: list[Any]) -> list[IpHold]:
    """The holds listed by ip_hold-3's refusal: order id, deadline, home slot, ..."""
    return [
        IpHold(text(order_id), int(deadline_ms), text(home))
        for order_id, deadline_ms, home in zip(
            entries[::3], entries[1::3], entries[2::3], strict=True
        )
    ]
