"""A sale's event stream as the write-behind's consumer group sees it.

Stream ids, XREADGROUP replies and the group's XINFO entry, shared by the
consumer (persist.py), its reclaim (reclaim.py) and the lag reading (lag.py).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError

from flashsale.engine.codec import text
from flashsale.engine.keys import PERSIST_GROUP

# One server or a Redis Cluster: every call names one sale's keys (one slot).
AnyRedis = Redis | RedisCluster


Entry = tuple[str, dict[Any, Any]]


def stream_entries(reply: Any) -> list[Entry]:
    """XREADGROUP reply (RESP2 list or RESP3 dict) of one stream -> [(id, fields)]."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        items = (
            streams[0][0]
            if streams
            and isinstance(streams[0], list)
            and streams[0]
            and isinstance(streams[0][0], list)
            else (streams[0] if streams else [])
        )
    else:
        items = reply[0][1]
    return [(text(entry_id), fields or {}) for entry_id, fields in items]


def entries_by_stream(reply: Any) -> dict[str, list[Entry]]:
    """XREADGROUP reply over several streams -> {stream key: [(id, fields)]}."""
    if not reply:
        return {}
    if isinstance(reply, dict):
        return {text(key): stream_entries({key: value}) for key, value in reply.items()}
    return {text(key): stream_entries([[key, items]]) for key, items in reply}


async def read_new_on_cluster(
    redis: RedisCluster, consumer: str, key: str, *, count: int, block_ms: int | None = None
) -> list[Entry]:
    """XREADGROUP of one stream's new entries, sent straight to the node serving its slot.

    Through ``redis.xreadgroup`` a cluster client first asks a node for the command's
    keys (COMMAND GETKEYS: XREADGROUP's keys move), a second call per read and a second
    connection of that node. A MOVED or ASK is still followed by redis-py; a node gone
    raises at once (no retry with ``target_nodes``) and the map is reloaded before the
    next read picks its node (``initialize`` does nothing unless a reload is pending)."""
    await redis.initialize()
    node = redis.get_node_from_key(key)
    args: list[Any] = ["XREADGROUP", "GROUP", PERSIST_GROUP, consumer, "COUNT", count]
    if block_ms is not None:
        args += ["BLOCK", block_ms]
    reply = await redis.execute_command(*args, "STREAMS", key, ">", target_nodes=node)
    return stream_entries(reply)


def next_id(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def id_key(stream_id: str) -> tuple[int, int]:
    """Sort key of a stream id: (milliseconds, sequence)."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


async def group_info(redis: AnyRedis, key: str) -> dict[str, Any] | None:
    """The write-behind group's XINFO GROUPS entry; None when the stream or group is missing."""
    try:
        groups = await redis.xinfo_groups(key)
    except ResponseError:
        return None  # no stream yet
    for group in groups:
        if text(group["name"]) == PERSIST_GROUP:
            return {text(k): v for k, v in group.items()}
    return None
