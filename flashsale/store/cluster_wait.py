"""The idle write-behind on a Redis Cluster: one blocking read per stream, all at once.

On one server an idle consumer makes ONE ``XREADGROUP ... BLOCK`` over every active
sale's stream (persist.py). A cluster refuses that command: its keys must share one
hash slot, even when the slots live on the same node (CROSSSLOT, checked on Redis 7),
and every sale (every bucket) is a slot of its own. So here each stream gets its own
blocking XREADGROUP, all of them at once, over one common window:

- a reader blocks on its stream until the window ends; entries that come are handed
  to the writer and the reader blocks again at once for what is left of the window,
  so every stream is watched the whole window and an event is written as it comes;
- one writer takes whatever the readers handed over (several streams together) and
  writes it (``write``: the consumer's ``_handle_together``), XACK after COMMIT;
- no read is cancelled in the normal course: each ends when its BLOCK runs out,
  inside the window, so no entry is read and then dropped. Only a node that has not
  answered ``READ_GRACE_S`` after its read's block ran out (frozen, gone) has that
  read cancelled: what it may have delivered is in this consumer's pending list,
  never acknowledged, and is written by the reclaim (XAUTOCLAIM, reclaim.py) as a
  dead consumer's entries are;
- a read that fails (a node gone in a failover, CLUSTERDOWN, UNBLOCKED, a redirect
  redis-py could not follow) ends its reader, and the window asks for a poll round;
  a connection error leaves redis-py's slot map to reload, which every read does
  before it picks its node (streams.py, ``read_new_on_cluster``).

Each blocked read holds one connection of its node, so at most ``node_cap(node)``
streams of a node are waited on; the others are read by the poll round that follows
the window (at most ``idle_block_s`` late).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ResponseError

from flashsale.store.streams import Entry, read_new_on_cluster
from flashsale.store.transient import TRANSIENT_REDIS

log = logging.getLogger("flashsale.persist")

# blocked reads per node at most, and at most half the node's connections (the rest
# serve the writer's XACKs and whoever shares the client)
BLOCKED_PER_NODE = 64
# a node silent this long after its read's block ran out is taken as gone
READ_GRACE_S = 2.0

# a read that failed for any of these ends its reader; a poll round follows
READ_FAILURES: tuple[type[BaseException], ...] = (*TRANSIENT_REDIS, TimeoutError, ResponseError)

Write = Callable[[dict[str, list[Entry]]], Awaitable[None]]
# what a reader hands the writer: a slot, its entries, and the signal they were taken
Handover = tuple[str, list[Entry], asyncio.Event]


@dataclass
class ClusterWait:
    """What one window did: entries written, by which slots, streams not waited on
    (over a node's cap), and whether a read failed."""

    written: int = 0
    slots: set[str] = field(default_factory=set)
    left_out: int = 0
    failed: bool = False

    @property
    def poll(self) -> bool:
        """A poll round must follow: some stream was not watched the whole window."""
        return self.failed or self.left_out > 0


def node_cap(node: ClusterNode) -> int:
    return min(BLOCKED_PER_NODE, max(1, node.max_connections // 2))


def waited_streams(redis: RedisCluster, streams: dict[str, str]) -> tuple[dict[str, str], int]:
    """The streams (events key -> slot) to block on, node by node within each node's
    cap, and how many were left out."""
    per_node: dict[str, int] = {}
    waited: dict[str, str] = {}
    left_out = 0
    for key, slot in streams.items():
        node = redis.get_node_from_key(key)
        if node is None or per_node.get(node.name, 0) >= node_cap(node):
            left_out += 1
            continue
        per_node[node.name] = per_node.get(node.name, 0) + 1
        waited[key] = slot
    return waited, left_out


async def wait_on_cluster(
    redis: RedisCluster,
    consumer: str,
    streams: dict[str, str],
    *,
    window_s: float,
    count: int,
    write: Write,
    stop: asyncio.Event,
) -> ClusterWait:
    """Block on every stream (events key -> slot) for ``window_s``, writing entries as
    they come; returns once every read has ended (none is left behind)."""
    result = ClusterWait()
    try:
        await redis.initialize()  # a no-op unless a connection error asked for a new map
        waited, left_out = waited_streams(redis, streams)
    except READ_FAILURES as exc:
        log.warning(
            "cluster map unavailable for the idle wait (%s: %s); polling", type(exc).__name__, exc
        )
        result.failed = True
        return result
    result.left_out = left_out
    deadline = time.monotonic() + window_s
    handovers: asyncio.Queue[Handover | None] = asyncio.Queue()
    failed: list[BaseException] = []
    readers = [
        asyncio.create_task(
            _read_until(redis, consumer, key, slot, deadline, count, handovers, stop, failed)
        )
        for key, slot in waited.items()
    ]
    try:
        running = len(readers)
        while running:
            batch: dict[str, list[Entry]] = {}
            item = await handovers.get()
            while True:  # everything handed over meanwhile goes in the same write
                if item is None:
                    running -= 1
                else:
                    slot, entries, taken = item
                    batch.setdefault(slot, []).extend(entries)
                    taken.set()
                if handovers.empty():
                    break
                item = handovers.get_nowait()
            if batch:
                await write(batch)  # entries in hand are written, even past a stop
                result.written += sum(len(entries) for entries in batch.values())
                result.slots |= batch.keys()
    except BaseException:
        for reader in readers:
            reader.cancel()  # an error path: what they held stays pending, reclaimed
        raise
    finally:
        outcomes = await asyncio.gather(*readers, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome
    result.failed = bool(failed)
    return result


async def _read_until(
    redis: RedisCluster,
    consumer: str,
    key: str,
    slot: str,
    deadline: float,
    count: int,
    handovers: asyncio.Queue[Handover | None],
    stop: asyncio.Event,
    failed: list[BaseException],
) -> None:
    """Block on one stream until ``deadline``, handing over what comes; a failed read
    ends the reader (noted in ``failed``)."""
    try:
        while not stop.is_set():
            block_ms = int((deadline - time.monotonic()) * 1000)
            if block_ms < 1:
                return  # the window is over (and BLOCK 0 would wait for ever)
            try:
                async with asyncio.timeout(block_ms / 1000 + READ_GRACE_S):
                    entries = await read_new_on_cluster(
                        redis, consumer, key, count=count, block_ms=block_ms
                    )
            except READ_FAILURES as exc:
                # a node gone or failing over, the slot moved, the group lost: a poll
                # round follows (run() backs off if Redis is still away)
                log.warning(
                    "blocking read of %s failed (%s: %s); a poll round follows",
                    key,
                    type(exc).__name__,
                    exc,
                )
                failed.append(exc)
                return
            if entries:
                taken = asyncio.Event()
                handovers.put_nowait((slot, entries, taken))
                await taken.wait()  # at most one batch per stream waits for the writer
    finally:
        handovers.put_nowait(None)
