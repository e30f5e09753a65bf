"""What the stack writes and derives without starting anything: each node's server.properties,
the cluster's ports and folders, the client settings and topic configs that point at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.io.admin import durability_configs
from ratifier.ops.stack import kafka
from ratifier.ops.stack.cluster import Cluster, cluster_nodes


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, state_dir=tmp_path / "state")


def test_single_node_config_is_the_one_node_dev_broker(settings: Settings) -> None:
    node = kafka.single_node(settings)
    props = _properties(kafka.server_properties(node, settings))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(settings.state_dir / "kafka" / "data")
    for key in (
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["num.partitions"] == str(settings.partitions)
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.cleaner.dedupe.buffer.size"] == "1048577"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_cluster_nodes_have_own_ports_and_folders(settings: Settings) -> None:
    nodes = cluster_nodes(settings)
    assert [n.node_id for n in nodes] == [1, 2, 3]
    assert [(n.port, n.controller_port) for n in nodes] == [
        (19192, 19193),
        (19292, 19293),
        (19392, 19393),
    ]
    assert [n.paths.root for n in nodes] == [
        settings.state_dir / "kafka-cluster" / f"node-{i}" for i in (1, 2, 3)
    ]
    single = kafka.single_node(settings)
    ports = [p for n in (*nodes, single) for p in (n.port, n.controller_port)]
    assert len(set(ports)) == len(ports), "the cluster runs beside the single node"
    # Pid-file liveness checks tell the JVMs apart by their config path.
    assert len({n.marker for n in (*nodes, single)}) == 4


@pytest.mark.parametrize("node_id", [1, 2, 3])
def test_cluster_node_config(settings: Settings, node_id: int) -> None:
    node = Cluster.of(settings).node(node_id)
    props = _properties(kafka.server_properties(node, settings))
    port = 19092 + 100 * node_id
    assert props["node.id"] == str(node_id)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19193,2@127.0.0.1:19293,3@127.0.0.1:19393"
    )
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
    assert props["log.dirs"] == str(
        settings.state_dir / "kafka-cluster" / f"node-{node_id}" / "data"
    )
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["share.coordinator.state.topic.replication.factor"] == "3"
    assert props["share.coordinator.state.topic.min.isr"] == "2"
    # The same memory-saving choices as the single node.
    assert props["log.cleaner.dedupe.buffer.size"] == "1048577"
    assert props["auto.create.topics.enable"] == "false"


def test_cluster_jvms_run_with_a_small_heap() -> None:
    assert "-Xms256m" in kafka.JVM_OPTS
    assert "-Xmx512m" in kafka.JVM_OPTS


def test_cluster_ports_follow_the_kafka_port(tmp_path: Path) -> None:
    moved = Settings.from_env({"RATIFIER_KAFKA_PORT": "29092"}, state_dir=tmp_path)
    assert Cluster.of(moved).bootstrap_servers == (
        "127.0.0.1:29192,127.0.0.1:29292,127.0.0.1:29392"
    )
    assert [n.controller_port for n in cluster_nodes(moved)] == [29193, 29293, 29393]


def test_cluster_client_settings_reach_all_three_nodes(settings: Settings) -> None:
    cluster = Cluster.of(settings)
    assert cluster.bootstrap_servers == "127.0.0.1:19192,127.0.0.1:19292,127.0.0.1:19392"
    client = cluster.settings
    assert client.bootstrap_servers == cluster.bootstrap_servers
    assert client.replication_factor == 3
    assert client.state_dir == settings.state_dir
    # The environment a process needs to reach the cluster gives the same settings back.
    assert Settings.from_env(cluster.environment()).bootstrap_servers == cluster.bootstrap_servers
    assert Settings.from_env(cluster.environment()).replication_factor == 3


def test_unknown_node_is_refused(settings: Settings) -> None:
    from ratifier.core.errors import StackError

    with pytest.raises(StackError, match="not 4"):
        Cluster.of(settings).node(4)


def test_topics_replicated_three_ways_need_two_in_sync(settings: Settings) -> None:
    assert durability_configs(settings) == {}
    assert durability_configs(Cluster.of(settings).settings) == {"min.insync.replicas": "2"}
