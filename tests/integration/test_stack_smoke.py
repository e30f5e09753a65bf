"""The real local stack works for what Ratifier builds on it.

aiokafka round trip, a faust app (agent + table with changelog + forwarding) on the real broker,
redis; and the stack's own errors (port taken, tools missing, jars not found) read clearly.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ratifier.core.config import Settings
from ratifier.core.errors import JarResolutionFailed, PortInUse, PrerequisiteMissing
from ratifier.core.topics import TopicNames
from ratifier.io.admin import admin_client, ensure_topics
from ratifier.ops import stack as local_stack
from ratifier.ops.stack import StackStatus, kafka, maven, process

pytestmark = pytest.mark.integration


async def _consume(
    settings: Settings,
    topic: str,
    group: str,
    count: int,
    timeout_s: float = 30.0,
    *,
    committed_only: bool = False,
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    got.extend((r.key, r.value) for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def test_stack_reports_both_services_up(stack: StackStatus, base_settings: Settings) -> None:
    status = local_stack.status(base_settings)
    assert status.running, str(status)
    assert status.kafka.address == f"127.0.0.1:{base_settings.kafka_port}"
    assert status.redis.address == f"127.0.0.1:{base_settings.redis_port}"
    assert "kafka" in str(status)
    assert "redis" in str(status)
    # up() on a running stack is a no-op that answers at once
    assert local_stack.up(base_settings).running


async def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    wanted = list(TopicNames.from_settings(settings).public)
    await ensure_topics(settings)  # the fixture already created them once
    async with admin_client(settings) as admin:
        described = {t["topic"]: t for t in await admin.describe_topics(wanted)}
    assert set(described) == set(wanted)
    for topic in described.values():
        assert topic["error_code"] == 0
        assert len(topic["partitions"]) == settings.partitions


async def test_aiokafka_round_trip(settings: Settings, unique_group: Callable[[str], str]) -> None:
    topic = TopicNames.from_settings(settings).candidates
    sent = [(f"case-{i % 3}".encode(), f"payload-{i}".encode()) for i in range(12)]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for key, value in sent:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    got = await _consume(settings, topic, unique_group("roundtrip"), len(sent))
    assert sorted(got) == sorted(sent)
    # per key (one partition each), order is kept
    for key in {k for k, _ in sent}:
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]


async def _send_then_fail(producer: AIOKafkaProducer, topic: str) -> None:
    async with producer.transaction():
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        raise RuntimeError("abort me")


async def test_transactional_producer(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    """Transactions (faust's exactly-once path) work on this broker: only commits are read."""
    topic = TopicNames.from_settings(settings).verdicts
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        transactional_id=f"{settings.topic_prefix}-tx",
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed", key=b"k")
        with pytest.raises(RuntimeError, match="abort me"):
            await _send_then_fail(producer, topic)
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=unique_group("tx"),
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    values: list[bytes | None] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < 2:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(r.value for r in records)
        # nothing else arrives: the aborted record stays invisible
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    assert values == [b"committed", b"committed-2"]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_faust_agent_table_and_forward(
    settings: Settings, unique_group: Callable[[str], str], tmp_path: Path, guarantee: str
) -> None:
    """faust-streaming + aiokafka on this Kafka: topic creation by faust, a table with its
    changelog, the app's consumer group, sends from inside an agent; with exactly_once, faust's
    transactional producers and offset commits inside transactions too."""
    import faust

    source_name = f"{settings.topic_prefix}.smoke.in"
    sink_name = f"{settings.topic_prefix}.smoke.out"
    app_id = f"{settings.topic_prefix}-smoke"
    app = faust.App(
        app_id,
        broker=settings.kafka_url,
        store="memory://",
        datadir=str(tmp_path / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
        broker_commit_interval=0.5,
        processing_guarantee=guarantee,
        key_serializer="raw",
        value_serializer="raw",
    )
    # faust creates these itself (internal=True), through CreateTopics on the real broker.
    source = app.topic(source_name, partitions=settings.partitions, internal=True)
    sink = app.topic(sink_name, partitions=settings.partitions, internal=True)
    counts = app.Table("counts", default=int, partitions=settings.partitions)
    ready = asyncio.Event()
    # faust enables transactions only inside a faust.Worker (App.in_transaction checks in_worker,
    # which Worker sets); set it as Worker does so exactly_once really runs transactional here.
    app.in_worker = True

    async def count(stream: Any) -> None:
        async for event in stream.events():
            key = event.key.decode()
            counts[key] += 1
            await sink.send(key=event.key, value=f"{key}:{counts[key]}".encode())

    app.agent(source)(count)

    async def on_ready() -> None:
        ready.set()

    app.task(on_ready)  # runs once the app has its partitions and recovered its tables

    await app.start()
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        await sink.maybe_declare()  # faust creates a topic it only sends to on first use
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        await producer.start()
        try:
            for key in ("a", "b", "a", "a", "b"):
                await producer.send_and_wait(source_name, b"x", key=key.encode())
        finally:
            await producer.stop()
        got = await _consume(
            settings, sink_name, unique_group("faust"), 5, timeout_s=60, committed_only=True
        )
        in_transaction = app.in_transaction
    finally:
        await app.stop()

    assert in_transaction == (guarantee == "exactly_once")
    assert sorted(v for _, v in got if v is not None) == sorted(
        [b"a:1", b"a:2", b"a:3", b"b:1", b"b:2"]
    )
    # The table's changelog exists on the broker and holds the final counts.
    changelog = f"{app_id}-counts-changelog"
    async with admin_client(settings) as admin:
        topics = set(await admin.list_topics())
    assert {source_name, sink_name, changelog} <= topics
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(changelog, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        latest: dict[bytes, bytes] = {}
        async with asyncio.timeout(30):
            ends = await consumer.end_offsets(parts)
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    latest.update((r.key, r.value) for r in records if r.key and r.value)
    finally:
        await consumer.stop()
    assert len(latest) == 2  # keys a and b, serialized by faust's table codec


async def test_redis_set_get(stack: StackStatus, base_settings: Settings) -> None:
    client = aioredis.from_url(base_settings.redis_url)
    key = f"ratifier-test:{uuid.uuid4().hex}"
    try:
        assert await client.ping()
        await client.set(key, b"value", ex=60)
        assert await client.get(key) == b"value"
    finally:
        await client.delete(key)
        await client.aclose()


# --- the stack's errors say what went wrong and what to do -------------------------------------


def test_port_taken_is_named(tmp_path: Path, base_settings: Settings) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = base_settings.with_overrides(
            state_dir=tmp_path / "state", redis_port=port, redis_url=""
        )
        with pytest.raises(PortInUse) as info:
            local_stack.up(settings)
    message = str(info.value)
    assert f"port {port}" in message
    assert "RATIFIER_REDIS_PORT" in message
    assert f"pid {os.getpid()}" in message  # the holder, found through /proc


def test_kafka_port_taken_is_named(tmp_path: Path, base_settings: Settings) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = base_settings.with_overrides(
            state_dir=tmp_path / "state", kafka_port=port, bootstrap_servers=""
        )
        with pytest.raises(PortInUse, match="RATIFIER_KAFKA_PORT"):
            kafka.start(settings)
    assert not (tmp_path / "state" / "kafka" / "kafka.pid").exists()


def test_missing_tools_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_settings: Settings
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(PrerequisiteMissing, match=r"java .*install-prereqs"):
        kafka.start(base_settings.with_overrides(state_dir=tmp_path / "state"))
    with pytest.raises(PrerequisiteMissing, match=r"mvn .*install-prereqs"):
        maven.resolve(base_settings.with_overrides(cache_dir=tmp_path / "cache"))
    with pytest.raises(PrerequisiteMissing, match="redis-server"):
        process.require_program("redis-server", "hint")


def test_unknown_kafka_version_fails_resolution_clearly(
    tmp_path: Path, base_settings: Settings
) -> None:
    settings = base_settings.with_overrides(
        cache_dir=tmp_path / "cache", kafka_version="0.0.404-no-such-version"
    )
    with pytest.raises(JarResolutionFailed) as info:
        maven.resolve(settings)
    message = str(info.value)
    assert "0.0.404-no-such-version" in message
    assert "Maven's output" in message
    assert "RATIFIER_KAFKA_VERSION" in message
    assert not maven.is_resolved(settings)
