"""A 3-node local KRaft cluster, and fault injection for the tests that run against it.

Every node is a combined broker + controller, so the three form a 3-voter quorum: stopping the
active controller forces a real election. Ports are derived from ``settings.kafka_port`` (default
19092) so that a second stack moved with ``RATIFIER_KAFKA_PORT`` moves its cluster too:

    node N: broker 127.0.0.1:<kafka_port + 100*N>, controller <kafka_port + 100*N + 1>
    default: 19192/19193, 19292/19293, 19392/19393

Node N keeps its files under ``<state_dir>/kafka-cluster/node-N/``, laid out like the single
node's ``<state_dir>/kafka/``. The cluster runs beside the single-node broker, never instead.

    cluster = Cluster.of(settings)
    cluster.up()                                # blocking: `ratifier stack up --brokers 3`
    client_settings = cluster.settings          # bootstrap = all three nodes, replication 3
    leader = await cluster.leader_of("t", 0)
    await cluster.stop_node(leader, kill=True)  # SIGKILL; kill=False: SIGTERM, clean shutdown
    await cluster.start_node(leader)            # back, and in sync on every partition it holds
    await cluster.controller_id()               # node id of the active KRaft controller
    cluster.down()

The fault-injection calls are coroutines (blocking work runs in a thread), so a test's own
in-process clients keep running while a node stops or starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ratifier.core.config import ENV_PREFIX, Settings
from ratifier.core.errors import StackError
from ratifier.ops.stack import kafka, wire
from ratifier.ops.stack.kafka import HOST, KafkaNode, KafkaPaths
from ratifier.ops.stack.process import ServiceStatus, file_lock, wait_until

log = logging.getLogger(__name__)

SIZE = 3
PORT_STEP = 100  # node N's ports sit N * PORT_STEP above the single node's broker port
REPLICATION = 3
# acks=all writes keep succeeding with one node down, and every write lands on two nodes.
MIN_INSYNC = 2
QUORUM = SIZE // 2 + 1  # controllers that must run for the cluster to take metadata changes
# How long a node left without a quorum may still finish a shutdown it began before.
LONE_NODE_GRACE_S = 5.0
# Three JVMs starting at once on two shared cores: slower than the single node.
START_TIMEOUT_S = 180.0
QUERY_TIMEOUT_S = 60.0

T = TypeVar("T")


def cluster_root(settings: Settings) -> Path:
    return settings.state_dir / "kafka-cluster"


def broker_port(settings: Settings, node_id: int) -> int:
    return settings.kafka_port + PORT_STEP * node_id


def controller_port(settings: Settings, node_id: int) -> int:
    return broker_port(settings, node_id) + 1


def cluster_nodes(settings: Settings) -> tuple[KafkaNode, ...]:
    ids = range(1, SIZE + 1)
    voters = tuple((node_id, controller_port(settings, node_id)) for node_id in ids)
    return tuple(
        KafkaNode(
            name=f"kafka{node_id}",
            node_id=node_id,
            port=broker_port(settings, node_id),
            controller_port=controller_port(settings, node_id),
            paths=KafkaPaths(cluster_root(settings) / f"node-{node_id}"),
            voters=voters,
            replication=REPLICATION,
            min_insync=MIN_INSYNC,
            port_env_var=f"{ENV_PREFIX}KAFKA_PORT (the cluster's ports are derived from it)",
            controller_port_env_var=f"{ENV_PREFIX}KAFKA_PORT (the cluster's ports follow it)",
            label=f" (cluster node {node_id})",
        )
        for node_id in ids
    )


@dataclass(frozen=True, slots=True)
class Cluster:
    """The local 3-node cluster described by ``base_settings`` (its ports and state dir)."""

    base_settings: Settings
    nodes: tuple[KafkaNode, ...]

    @classmethod
    def of(cls, settings: Settings) -> Cluster:
        return cls(settings, cluster_nodes(settings))

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(node.node_id for node in self.nodes)

    @property
    def bootstrap_servers(self) -> str:
        """Every node's broker address, comma-separated, as clients take it."""
        return ",".join(node.address for node in self.nodes)

    @property
    def settings(self) -> Settings:
        """The base settings pointed at the cluster, with topics replicated on all three nodes."""
        return self.base_settings.with_overrides(
            bootstrap_servers=self.bootstrap_servers, replication_factor=REPLICATION
        )

    def environment(self) -> dict[str, str]:
        """The variables that point Ratifier's processes at the cluster."""
        return {
            f"{ENV_PREFIX}BOOTSTRAP_SERVERS": self.bootstrap_servers,
            f"{ENV_PREFIX}REPLICATION_FACTOR": str(REPLICATION),
        }

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise StackError(f"the cluster has nodes {self.node_ids}, not {node_id}")

    # --- whole cluster (blocking) -------------------------------------------------------------

    def running_node_ids(self) -> tuple[int, ...]:
        """Nodes whose JVM runs, answering yet or not."""
        return tuple(node.node_id for node in self.nodes if kafka.node_running(node))

    def status(self) -> tuple[ServiceStatus, ...]:
        """One line per node; the active controller's line says so."""
        statuses = [kafka.node_status(node, self.base_settings) for node in self.nodes]
        if not any(s.running for s in statuses):
            return tuple(statuses)
        try:
            leader = self._ask(wire.quorum_leader)
        except StackError:
            return tuple(statuses)  # no quorum right now; the lines still say who runs
        return tuple(
            dataclasses.replace(s, detail=f"{s.detail}; active controller")
            if s.running and node.node_id == leader
            else s
            for node, s in zip(self.nodes, statuses, strict=True)
        )

    def up(self, *, timeout_s: float = START_TIMEOUT_S) -> tuple[ServiceStatus, ...]:
        """Start every node that is not running; return once all are registered brokers.

        Idempotent: a running cluster is left alone. All checks (Java, jars, every port) run
        before any node starts, so a taken port does not leave a partial cluster behind.
        """
        with file_lock(self._lock_path):
            for node in self.nodes:
                kafka.node_preflight(node, self.base_settings)
            cluster_id = self._cluster_id()
            # Every JVM is launched before any is awaited: a node's startup needs a quorum,
            # which needs two of the three controllers running.
            launches = [
                (node, kafka.launch_node(node, self.base_settings, cluster_id=cluster_id))
                for node in self.nodes
            ]
            for node, launch in launches:
                kafka.wait_node_ready(node, launch, timeout_s=timeout_s)
            self._wait_registered(set(self.node_ids), timeout_s=timeout_s)
        return self.status()

    def down(self) -> None:
        """Stop every node: SIGTERM to all at once, SIGKILL for a node that cannot finish.

        A node's controlled shutdown needs an active controller, hence a quorum of two running
        controllers. SIGTERM to all at once lets most finish while the quorum stands, but a
        node left alone waits for a quorum that never comes back: after a short grace it is
        killed (its next start recovers its logs) instead of waiting the whole stop timeout.
        """
        with file_lock(self._lock_path):
            running = [node for node in self.nodes if kafka.node_running(node)]
            for node in running:
                kafka.request_node_stop(node)
            started = time.monotonic()
            quorum_lost_at: float | None = None
            while True:
                left = [node for node in running if kafka.node_running(node)]
                now = time.monotonic()
                if len(left) < QUORUM and quorum_lost_at is None:
                    quorum_lost_at = now
                if (
                    not left
                    or now - started > kafka.STOP_TIMEOUT_S
                    or (quorum_lost_at is not None and now - quorum_lost_at > LONE_NODE_GRACE_S)
                ):
                    break
                time.sleep(0.1)
            for node in left:
                log.info("%s could not finish its shutdown without a quorum; killing it", node.name)
            for node in self.nodes:
                kafka.stop_node(node, kill=True)  # kills what is left, removes every pid file

    # --- fault injection (coroutines) ---------------------------------------------------------

    async def stop_node(self, node_id: int, *, kill: bool = False) -> None:
        """Stop one node: SIGTERM and wait for its clean exit, or with ``kill`` SIGKILL at once.

        Returns when the process is gone. After a SIGKILL the cluster only notices once the
        node's broker session times out (broker.session.timeout.ms, 9 s by default).
        """
        node = self.node(node_id)
        await asyncio.to_thread(kafka.stop_node, node, kill=kill)

    async def start_node(self, node_id: int, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start one stopped node and return once it has rejoined.

        Rejoined: it answers requests, is a registered (unfenced) broker again, and is back in
        the ISR of every partition it replicates. A node that already runs is only awaited.
        """
        await asyncio.to_thread(self._start_node_blocking, node_id, timeout_s)

    async def wait_in_sync(self, node_id: int, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until ``node_id`` is a registered broker and in the ISR of all its partitions."""
        self.node(node_id)  # unknown ids fail here, not after the timeout
        await asyncio.to_thread(self._wait_in_sync_blocking, node_id, timeout_s)

    async def controller_id(self, *, timeout_s: float = QUERY_TIMEOUT_S) -> int:
        """The node id of the active KRaft controller.

        Waits while an election runs, and until the quorum names a node whose process runs.
        """
        return await asyncio.to_thread(
            self._poll, wire.quorum_leader, self._is_running, timeout_s, "a running controller"
        )

    async def leader_of(
        self, topic: str, partition: int, *, timeout_s: float = QUERY_TIMEOUT_S
    ) -> int:
        """The node id that leads ``topic``/``partition``.

        Waits until the metadata names a leader whose process runs here: right after a SIGKILL
        the metadata still names the dead node until the controller fences it.
        """

        def ask(host: str, port: int) -> int:
            found = wire.metadata(host, port, [topic])
            if topic in found.topic_errors:
                raise StackError(f"{topic}: error code {found.topic_errors[topic]}")
            state = found.partitions.get((topic, partition))
            return -1 if state is None else state.leader

        return await asyncio.to_thread(
            self._poll, ask, self._is_running, timeout_s, f"a running leader of {topic}-{partition}"
        )

    # --- internals ----------------------------------------------------------------------------

    def _is_running(self, node_id: int) -> bool:
        return node_id in self.running_node_ids()

    @property
    def _lock_path(self) -> Path:
        return cluster_root(self.base_settings) / "cluster.lock"

    def _start_node_blocking(self, node_id: int, timeout_s: float) -> None:
        node = self.node(node_id)
        started = time.monotonic()
        with file_lock(self._lock_path):
            launch = kafka.launch_node(node, self.base_settings, cluster_id=self._cluster_id())
            kafka.wait_node_ready(node, launch, timeout_s=timeout_s)
        self._wait_in_sync_blocking(node_id, timeout_s - (time.monotonic() - started))
        log.info("cluster node %s rejoined after %.1f s", node_id, time.monotonic() - started)

    def _wait_in_sync_blocking(self, node_id: int, timeout_s: float) -> None:
        lagging: list[str] = []

        def in_sync() -> bool:
            try:
                found = self._ask(wire.metadata)
            except StackError:
                return False
            lagging[:] = [
                f"{topic}-{index}"
                for (topic, index), state in found.partitions.items()
                if node_id in state.replicas and node_id not in state.isr
            ]
            if node_id not in found.brokers:
                lagging.append("(not registered as a broker)")
            return not lagging

        try:
            wait_until(in_sync, timeout_s=max(timeout_s, 1.0), what=f"node {node_id} in sync")
        except StackError as exc:
            raise StackError(f"{exc}; still lagging: {', '.join(lagging[:10])}") from exc

    def _wait_registered(self, node_ids: set[int], *, timeout_s: float) -> None:
        def registered() -> bool:
            try:
                return node_ids <= self._ask(wire.metadata).brokers
            except StackError:
                return False

        wait_until(registered, timeout_s=timeout_s, what=f"brokers {sorted(node_ids)} registered")

    def _ask(self, request: Callable[[str, int], T]) -> T:
        """``request`` answered by the first running node that answers it."""
        errors: list[str] = []
        for node in self.nodes:
            if not kafka.node_running(node):
                continue
            try:
                return request(HOST, node.port)
            except StackError as exc:
                errors.append(str(exc))
        raise StackError("no cluster node answered: " + ("; ".join(errors) or "none runs"))

    def _poll(
        self,
        request: Callable[[str, int], T],
        good: Callable[[T], bool],
        timeout_s: float,
        what: str,
    ) -> T:
        """Ask until the answer is ``good``, tolerating nodes that do not answer meanwhile."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while True:
            try:
                answer = self._ask(request)
                if good(answer):
                    return answer
                last = f"last answer {answer!r}"
            except StackError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise StackError(f"timed out after {timeout_s:.0f} s waiting for {what}: {last}")
            time.sleep(0.2)

    def _cluster_id(self) -> str:
        """The id the formatted nodes share, or a new one when none is formatted yet."""
        for node in self.nodes:
            meta = node.paths.data / "meta.properties"
            if meta.is_file():
                for line in meta.read_text().splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() == "cluster.id":
                        return value.strip()
        return kafka.new_cluster_id()
