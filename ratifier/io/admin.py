"""Topic administration: create Ratifier's topics idempotently, delete them for test cleanup."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.errors import for_code as error_for_code

from ratifier.core.config import Settings
from ratifier.core.errors import StackError
from ratifier.core.topics import TopicNames
from ratifier.io.client import assign_all
from ratifier.io.kafka import bootstrap_failures, connection_options, make_consumer

log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 30.0


def default_topics(settings: Settings) -> tuple[str, ...]:
    """Every topic Ratifier needs: the public ones plus the tally's tick topic."""
    names = TopicNames.from_settings(settings)
    return names.public


def durability_configs(settings: Settings) -> dict[str, str]:
    """Topic configs that follow from the replication factor.

    Replicated three ways or more, a topic takes acks=all writes only while two replicas are
    in sync: such a write survives one broker's loss, and one broker down does not stop writes.
    """
    if settings.replication_factor >= 3:
        return {"min.insync.replicas": "2"}
    return {}


@asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**connection_options(settings), client_id="ratifier-admin")
    try:
        with bootstrap_failures() as causes:
            await client.start()
    except KafkaError as exc:
        await client.close()
        where = settings.kafka_connection().describe()
        if any("Authentication" in cause for cause in causes):
            raise StackError(f"Kafka at {where} refused the credentials: {causes[-1]}") from exc
        cause = causes[-1] if causes else repr(exc)
        raise StackError(
            f"cannot reach Kafka at {where}: {cause}. "
            "Is the broker running (`ratifier stack status`), with this security protocol?"
        ) from exc
    try:
        yield client
    finally:
        await client.close()


async def ensure_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet, then wait until every partition has a leader.

    ``configs`` are topic configs for the topics created (e.g. ``cleanup.policy``). Existing
    topics are left as they are (their partition count and configs are not changed).

    Without ``names`` (every public topic, a convenience of ``tally run`` and friends), a topic
    this principal may neither see nor create is skipped with a warning: on a cluster with
    least-privilege ACLs an admin creates the topics (docs/security.md). Named topics must be
    there or be created.
    """
    wanted = list(dict.fromkeys(default_topics(settings) if names is None else names))
    if not wanted:
        return
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        settings.partitions,
                        settings.replication_factor,
                        topic_configs={**durability_configs(settings), **(configs or {})},
                    )
                    for name in missing
                ]
            )
            failures = [
                (topic, code, message)
                for topic, code, message in _topic_errors(response)
                # Another process may create the same topic between our list and create.
                if code not in (0, TopicAlreadyExistsError.errno)
            ]
            denied = [t for t, code, _ in failures if code == TopicAuthorizationFailedError.errno]
            if names is None and denied:
                log.warning(
                    "not allowed to see or create %s: skipped (an admin creates them)",
                    ", ".join(denied),
                )
                failures = [f for f in failures if f[0] not in denied]
                wanted = [name for name in wanted if name not in denied]
            if failures:
                details = "; ".join(
                    f"{topic}: {error_for_code(code).__name__} {message or ''}".strip()
                    for topic, code, message in failures
                )
                raise StackError(f"could not create topics: {details}")
            log.info("created topics %s", ", ".join(missing))
        await _wait_for_leaders(admin, wanted)


async def partition_counts(settings: Settings, names: Iterable[str]) -> dict[str, int | None]:
    """Each topic's partition count; None for a topic that does not exist."""
    async with admin_client(settings) as admin:
        described = await admin.describe_topics(list(names))
    return {
        topic["topic"]: (len(topic["partitions"]) if topic["error_code"] == 0 else None)
        for topic in described
    }


async def topic_config(settings: Settings, names: Iterable[str], key: str) -> dict[str, str]:
    """The value of topic config ``key`` (e.g. ``max.message.bytes``) for each existing topic."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    async with admin_client(settings) as admin:
        responses = await admin.describe_configs(resources)
    values: dict[str, str] = {}
    for response in responses:
        for error_code, _message, _kind, name, entries, *_ in response.resources:
            found = [entry[1] for entry in entries if entry[0] == key]
            if error_code == 0 and found:
                values[name] = found[0]
    return values


async def group_member_count(settings: Settings, group: str) -> int:
    """Members of consumer group ``group`` once it is Stable; 0 while it is forming or absent."""
    async with admin_client(settings) as admin:
        try:
            (response,) = await admin.describe_consumer_groups([group])
        except GroupCoordinatorNotAvailableError:
            return 0  # a fresh broker creates __consumer_offsets on the first group
    _error, _group_id, state, *_rest, members = response.groups[0][:6]
    return len(members) if state == "Stable" else 0


async def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    """Delete topics; topics that do not exist are ignored."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        present = [name for name in wanted if name in existing]
        if not present:
            return
        response = await admin.delete_topics(present)
        for topic, code, *_ in response.topic_error_codes:
            if code not in (0, UnknownTopicOrPartitionError.errno):
                raise StackError(f"could not delete topic {topic}: {error_for_code(code).__name__}")


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    # CreateTopics v0 answers (topic, code); later versions add a message.
    return [
        (entry[0], entry[1], entry[2] if len(entry) > 2 else None)
        for entry in response.topic_errors
    ]


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Until metadata shows a leader for every partition, so the first produce does not fail."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    pending = list(names)
    while True:
        described = await admin.describe_topics(pending)
        pending = [
            topic["topic"]
            for topic in described
            if topic["error_code"] != 0
            or not topic["partitions"]
            or any(p["leader"] < 0 for p in topic["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"topics have no leader after {_READY_TIMEOUT_S:.0f} s: {pending}")
        await asyncio.sleep(0.1)


async def set_group_offsets(
    settings: Settings, group: str, topics: Iterable[str], offset: int | None = 0
) -> None:
    """Commit ``offset`` for every partition of ``topics`` in ``group`` (None: each partition's
    beginning), as ``kafka-consumer-groups.sh --reset-offsets`` does. The group must be empty
    (its members stopped): the broker refuses commits from outside a live generation.
    """
    reader = make_consumer(settings, group_id=None, client_id=f"ratifier-reset-{group}-reader")
    await reader.start()
    try:  # a group-less reader finds the partitions (assigning twice would upset a group's)
        await assign_all(reader, topics, from_beginning=True)
        partitions: list[TopicPartition] = sorted(reader.assignment())
        beginnings = await reader.beginning_offsets(partitions)
    finally:
        await reader.stop()
    targets = {tp: beginnings[tp] if offset is None else offset for tp in partitions}
    committer = make_consumer(settings, group_id=group, client_id=f"ratifier-reset-{group}")
    await committer.start()
    try:
        committer.assign(partitions)
        await committer.commit(targets)
    finally:
        await committer.stop()
