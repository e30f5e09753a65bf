"""The local 3-node cluster: replicated topics, transactions through it, and writes that go on
while a partition's leader or the active controller is down.

Slow and heavy (three more JVMs), so excluded by default: run with ``pytest -m cluster``. The
module starts the cluster if it does not run, and stops it afterwards only if it started it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.ops.stack import wire
from ratifier.ops.stack.cluster import Cluster
from ratifier.ops.stack.kafka import HOST

pytestmark = [pytest.mark.cluster, pytest.mark.integration]


@pytest.fixture(scope="module")
def cluster(base_settings: Settings) -> Iterator[Cluster]:
    cluster = Cluster.of(base_settings)
    started_from_nothing = not cluster.running_node_ids()
    cluster.up()
    yield cluster
    # A cluster that already ran (another suite's, a developer's) is left as it was found.
    if started_from_nothing:
        cluster.down()


@pytest.fixture
async def cluster_settings(cluster: Cluster) -> AsyncIterator[Settings]:
    prefix = f"c{uuid.uuid4().hex[:12]}"
    settings = cluster.settings.with_overrides(topic_prefix=prefix)
    await ensure_topics(settings)
    yield settings
    # A failed test may leave a node down; cleaning up needs every node for rf-3 metadata.
    for node_id in cluster.node_ids:
        await cluster.start_node(node_id)
    async with admin_client(settings) as admin:
        ours = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
    await delete_topics(settings, ours)


async def _read_partition(
    settings: Settings, topic: str, partition: int, count: int
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(60):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                got.extend((r.key, r.value) for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return got


async def _produce_acks_all(settings: Settings, topic: str, partition: int, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"case", partition=partition)
    finally:
        await producer.stop()


async def test_topics_are_replicated_on_all_three_nodes(
    cluster: Cluster, cluster_settings: Settings
) -> None:
    names = list(TopicNames.from_settings(cluster_settings).public)
    found = wire.metadata(HOST, cluster.nodes[0].port, names)
    assert found.brokers == frozenset({1, 2, 3})
    for (topic, index), state in found.partitions.items():
        assert sorted(state.replicas) == [1, 2, 3], (topic, index)
    async with admin_client(cluster_settings) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    min_isr = {
        resource[3]: value
        for response in responses
        for resource in response.resources
        for key, value, *_ in resource[4]
        if key == "min.insync.replicas"
    }
    assert min_isr == dict.fromkeys(names, "2")


async def test_transactional_records_go_through_the_cluster(
    cluster: Cluster, cluster_settings: Settings
) -> None:
    topic = TopicNames.from_settings(cluster_settings).candidates
    assert cluster_settings.bootstrap_servers.count(",") == 2
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster_settings.bootstrap_servers,
        transactional_id=f"cluster-test-{uuid.uuid4().hex[:8]}",
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"aborted", key=b"case", partition=0)
            await producer.abort_transaction()
            await producer.begin_transaction()  # the context manager commits this one
            await producer.send_and_wait(topic, b"committed", key=b"case", partition=0)
    finally:
        await producer.stop()
    # read_committed: the aborted record is skipped, the committed one is all there is.
    assert await _read_partition(cluster_settings, topic, 0, 1) == [(b"case", b"committed")]


async def test_acks_all_writes_go_on_while_the_partition_leader_is_down(
    cluster: Cluster, cluster_settings: Settings
) -> None:
    topic = TopicNames.from_settings(cluster_settings).candidates
    await _produce_acks_all(cluster_settings, topic, 0, b"before")
    leader = await cluster.leader_of(topic, 0)
    await cluster.stop_node(leader)
    assert leader not in cluster.running_node_ids()
    # Two of three replicas in sync meet min.insync.replicas=2.
    await _produce_acks_all(cluster_settings, topic, 0, b"while-down")
    new_leader = await cluster.leader_of(topic, 0)
    assert new_leader != leader
    await cluster.start_node(leader)
    state = wire.metadata(HOST, cluster.node(leader).port, [topic]).partitions[(topic, 0)]
    assert leader in state.isr, "start_node returns once the node is back in sync"
    got = await _read_partition(cluster_settings, topic, 0, 2)
    assert [value for _key, value in got] == [b"before", b"while-down"]


async def test_a_killed_controller_is_replaced_and_writes_go_on(
    cluster: Cluster, cluster_settings: Settings
) -> None:
    topic = TopicNames.from_settings(cluster_settings).verdicts
    controller = await cluster.controller_id()
    await cluster.stop_node(controller, kill=True)
    successor = await cluster.controller_id()
    assert successor != controller
    # Every partition takes an acks=all write, those the dead node led included: the new
    # controller fences it once its broker session times out and elects other leaders.
    partitions = range(cluster_settings.partitions)
    await asyncio.gather(
        *(_produce_acks_all(cluster_settings, topic, p, b"during") for p in partitions)
    )
    await cluster.start_node(controller)
    assert await cluster.controller_id() in cluster.node_ids
    for p in partitions:
        assert len(await _read_partition(cluster_settings, topic, p, 1)) == 1
