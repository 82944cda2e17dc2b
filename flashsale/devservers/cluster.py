"""A private Redis Cluster: cluster-enabled EmbeddedRedis nodes sharing all slots."""

from __future__ import annotations

import contextlib
import functools
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from redis.crc import key_slot

from flashsale.devservers.errors import EmbeddedServerError
from flashsale.devservers.ports import HOST
from flashsale.devservers.process import Managed, tail
from flashsale.devservers.reaping import new_owned_dir, remove_owned_dir
from flashsale.devservers.redis import EmbeddedRedis, command, find_redis_cli, probe_client

_SLOTS = 16384


class EmbeddedRedisCluster(Managed):
    """`nodes` cluster-enabled masters sharing all 16384 slots, each with `replicas`
    replicas (for failover tests).

    Slots are assigned with CLUSTER ADDSLOTSRANGE and every node MEETs every other;
    this reached cluster_state:ok in 2.1 s on 10 runs out of 10, the floor being
    Redis's own 2 s delay before a fresh master turns writable. ``redis-cli
    --cluster create`` (`use_redis_cli=True`) works too but waits on gossip: 2.1 to
    7 s here. Node servers are in `servers`: the masters first, in slot order, then
    the replicas, master by master. A replica is told ``CLUSTER REPLICATE <master id>``
    once it knows its master (``--replicaof`` is refused in cluster mode); give
    ``--cluster-node-timeout`` in `extra_args` for a failover faster than 5 s.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        replicas: int = 0,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
        use_redis_cli: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if replicas < 0 or (replicas and use_redis_cli):
            raise ValueError("replicas: 0 or more, and not with use_redis_cli")
        self.node_count = nodes
        self.replica_count = replicas
        self.extra_args = tuple(extra_args)
        self._workdir = Path(workdir).resolve() if workdir is not None else None
        self._owns_dir = workdir is None
        self._dir: Path | None = self._workdir
        self._cli = find_redis_cli() if use_redis_cli else None
        if use_redis_cli and (self._cli is None or nodes < 3):  # it insists on 3 masters
            raise EmbeddedServerError("redis-cli not found, or fewer than 3 nodes")
        self._die_with_parent = die_with_parent
        self.servers: list[EmbeddedRedis] = []

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise EmbeddedServerError("cluster has no directory before start()")
        return self._dir

    @property
    def masters(self) -> list[EmbeddedRedis]:
        """The nodes started as masters (a failover may since have demoted one)."""
        return self.servers[: self.node_count]

    def replicas_of(self, master: int) -> list[EmbeddedRedis]:
        """The nodes started as replicas of ``masters[master]``."""
        first = self.node_count + master * self.replica_count
        return self.servers[first : first + self.replica_count]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node, for ClusterNode(host, port) of either client."""
        return [(HOST, s.port) for s in self.servers]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        """The first node; a cluster client discovers the others from it."""
        if not self.servers:
            raise EmbeddedServerError("cluster not started")
        return self.servers[0].url

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, assign the slots, and wait for cluster_state:ok everywhere."""
        if self.servers and all(s.running for s in self.servers):
            return
        if self._dir is None:
            self._dir = new_owned_dir("cluster")
        fresh = not self.servers
        if fresh:
            total = self.node_count * (1 + self.replica_count)
            self.servers = [
                EmbeddedRedis(
                    cluster=True,
                    extra_args=self.extra_args,
                    workdir=self.dir / f"node{i}",
                    die_with_parent=self._die_with_parent,
                )
                for i in range(total)
            ]
        try:
            for server in self.servers:
                server.start()
            if fresh:
                if self._cli is not None:
                    self._create_with_cli(timeout)
                else:
                    self._create_with_commands()
            self._wait_ok(timeout)
            if fresh and self.replica_count:
                self._attach_replicas(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()
        if self._owns_dir and self._dir is not None:
            remove_owned_dir(self._dir)
            self._dir = None
        self.servers = []

    def _create_with_cli(self, timeout: float) -> None:
        assert self._cli is not None
        log_path = self.dir / "create.log"
        argv = [
            str(self._cli), "--cluster", "create",
            *(f"{HOST}:{s.port}" for s in self.servers),
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            result = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout,
            )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedServerError(f"redis-cli --cluster create failed:\n{tail(log_path)}")

    def _create_with_commands(self) -> None:
        clients = [probe_client(s.port, 5.0) for s in self.servers]
        try:
            n = self.node_count
            for i, client in enumerate(clients[:n]):
                first, last = i * _SLOTS // n, (i + 1) * _SLOTS // n - 1
                try:
                    command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)
                except redis.ResponseError:  # before Redis 7.0
                    command(client, "CLUSTER", "ADDSLOTS", *range(first, last + 1))
                # Distinct epochs up front spare the cluster its collision resolution.
                command(client, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            # Every node meets every other: left to gossip, a node learns of a third
            # one only at its next random once-a-second ping, which took up to 6 s.
            for i, server in enumerate(self.servers):
                bus_port = server.cluster_bus_port
                if bus_port is None:
                    raise EmbeddedServerError(f"node on port {server.port} is not in cluster mode")
                # The bus port must be given: it is not the default port + 10000 here.
                for client in clients[:i]:
                    command(client, "CLUSTER", "MEET", HOST, server.port, bus_port)
        finally:
            for client in clients:
                client.close()

    def _attach_replicas(self, timeout: float) -> None:
        """Each replica REPLICATEs its master once it has learnt the master's id by
        gossip, then the wait lasts until every replica's link is up."""
        for index, master in enumerate(self.masters):
            with contextlib.closing(probe_client(master.port)) as client:
                master_id = command(client, "CLUSTER", "MYID")
            master_id = master_id.decode() if isinstance(master_id, bytes) else str(master_id)
            for replica in self.replicas_of(index):
                _until(
                    functools.partial(_replicate, replica, master_id),
                    timeout,
                    f"replica on port {replica.port} could not follow {master_id}",
                )
        for index in range(self.node_count):
            for replica in self.replicas_of(index):
                replica.wait_in_sync(timeout)
        # the replica's link being up is its own view: its master counts it for
        # min-replicas-to-write only once it has put it online (after its first
        # REPLCONF ACK) with a lag within min-replicas-max-lag; until then a write
        # answers NOREPLICAS. Wait for the masters' own count.
        for index, master in enumerate(self.masters):
            _until(
                functools.partial(_replicas_good, master, len(self.replicas_of(index))),
                timeout,
                f"master on port {master.port} does not count its replicas online",
            )

    def primary_of(self, key: str) -> EmbeddedRedis:
        """The node serving ``key``'s slot now, as a running node sees the cluster."""
        slot = key_slot(key.encode())
        node = next(s for s in self.servers if s.running)
        with contextlib.closing(probe_client(node.port)) as client:
            slots = command(client, "CLUSTER", "SLOTS")
        [port] = [int(p[1]) for first, last, p, *_ in slots if first <= slot <= last]
        return next(s for s in self.servers if s.port == port)

    def wait_failover(self, killed: EmbeddedRedis, timeout: float = 30.0) -> None:
        """After ``killed`` (a master) was killed: wait until a living node sees the cluster
        ok with every slot served by another node (one of its replicas took over)."""
        living = [s for s in self.servers if s is not killed and s.running]

        def taken_over() -> bool:
            with contextlib.closing(probe_client(living[0].port)) as client:
                info = command(client, "CLUSTER", "INFO")
                slots = command(client, "CLUSTER", "SLOTS")
            text = info.decode() if isinstance(info, bytes) else str(info)
            primaries = {int(primary[1]) for _, _, primary, *_ in slots}
            return "cluster_state:ok" in text and killed.port not in primaries

        _until(taken_over, timeout, f"no replica took over from port {killed.port}")

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.servers)
        while pending:
            client = probe_client(pending[0].port)
            try:
                raw = command(client, "CLUSTER", "INFO")
            except redis.RedisError:
                raw = b""
            finally:
                client.close()
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            if "cluster_state:ok" in text and f"cluster_known_nodes:{len(self.servers)}" in text:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"cluster not ok after {timeout:.0f} s on port {pending[0].port}:\n{text}"
                )
            time.sleep(0.05)


def _replicate(replica: EmbeddedRedis, master_id: str) -> bool:
    """CLUSTER REPLICATE, False while the replica does not know the master yet."""
    with contextlib.closing(probe_client(replica.port)) as client:
        try:
            command(client, "CLUSTER", "REPLICATE", master_id)
        except redis.ResponseError:
            return False  # "Unknown node": gossip has not told it yet
    return True


def _replicas_good(master: EmbeddedRedis, count: int) -> bool:
    """The master sees ``count`` replicas online, and counts as many good ones for
    min-replicas-to-write when that is set (``min_slaves_good_slaves``)."""
    with contextlib.closing(probe_client(master.port)) as client:
        info = client.info("replication")
    online = [
        value
        for key, value in info.items()
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    ]
    good = int(info.get("min_slaves_good_slaves", count))
    return len(online) >= count and good >= count


def _until(check: Callable[[], bool], timeout: float, failure: str) -> None:
    """Poll ``check`` (a cluster's own state: nothing to wait on but asking) until true."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"{failure} after {timeout:.0f} s")
        time.sleep(0.05)
