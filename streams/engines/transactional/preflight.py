"""Checks before the tally consumes anything: topics, partitioning and size limits.

A tally that starts against missing topics, input topics with different partition counts (a
case's records would not meet in one worker) or a broker that refuses its largest records would
fail later, on some case, in a way much harder to read.
"""

from __future__ import annotations

from collections.abc import Mapping

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.policy import Policy
from ratifier.core.topics import TopicNames
from ratifier.io.admin import ensure_topics, partition_counts, topic_config
from ratifier.streams.rules.limits import SizeLimits

# State is a key-value store: the changelog keeps each case's latest entry only.
CHANGELOG_CONFIGS = {"cleanup.policy": "compact"}


async def check_topics(settings: Settings, policies: Mapping[str, Policy]) -> None:
    names = TopicNames.from_settings(settings)
    limits = SizeLimits.from_settings(settings)
    for policy in policies.values():
        limits.check_policy(policy)
    inputs = (names.candidates, names.verdicts)
    counts = await partition_counts(settings, inputs)
    missing = [topic for topic, count in counts.items() if count is None]
    if missing:
        raise ConfigError(
            f"input topics {', '.join(missing)} do not exist at {settings.bootstrap_servers} "
            f"(topic prefix {settings.topic_prefix!r}): create them with `ratifier stack up` "
            "or check RATIFIER_TOPIC_PREFIX"
        )
    if len(set(counts.values())) != 1:
        raise ConfigError(
            f"candidates and verdicts must have the same partition count (a case's records "
            f"must meet in one worker), found {counts}"
        )
    (partitions,) = set(counts.values())
    assert partitions is not None
    like_inputs = settings.with_overrides(partitions=partitions)
    # Round requests (docs/debate.md) co-partitioned with the candidates, like the decisions.
    await ensure_topics(like_inputs, [*names.decisions, names.deadletter, names.rounds])
    await ensure_topics(like_inputs, [names.tally_changelog], configs=CHANGELOG_CONFIGS)
    changelog_partitions = (await partition_counts(settings, [names.tally_changelog]))[
        names.tally_changelog
    ]
    if changelog_partitions != partitions:
        raise ConfigError(
            f"changelog {names.tally_changelog} has {changelog_partitions} partitions, the "
            f"input topics {partitions}: they must match"
        )
    outputs = [names.tally_changelog, *names.decisions, names.deadletter, names.rounds]
    for topic, value in (await topic_config(settings, outputs, "max.message.bytes")).items():
        if int(value) < settings.max_record_bytes:
            raise ConfigError(
                f"topic {topic} takes records up to {value} bytes (max.message.bytes), less "
                f"than RATIFIER_MAX_RECORD_BYTES={settings.max_record_bytes}: raise the "
                "topic's limit or lower the setting"
            )
