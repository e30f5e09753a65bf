"""Through the real broker: how the tally reads its inputs.

A tally that starts behind a backlog must not time out its windows, and a record larger than
what a consumer fetches per partition (``MAX_PARTITION_FETCH_BYTES``) is still read and decided.

Candidates are a sixth of the records, so a tally reading a backlog reads them far ahead of their
verdicts. Windows measured by the wall clock alone then closed before verdicts that were already
in Kafka were read, and those cases were retried (~30 % in the 1M-case benchmark). Each
partition's time is now how far its inputs have been read (``streams/clock.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, PassDecision, Verdict, Vote, now_ms
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import MAX_PARTITION_FETCH_BYTES, make_producer
from ratifier.io.testing import read_topics, write_policy
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec

pytestmark = pytest.mark.integration

CASES = 6_000
VOTERS = ("v1", "v2", "v3")
WINDOW_S = 1  # far shorter than the time the tally needs to read the backlog


def case(i: int, content: str = "a" * 300) -> tuple[Candidate, list[Verdict]]:
    cand = Candidate(
        case_id=f"b{i:06d}",
        attempt=1,
        candidate_id=f"b{i:06d}-1",
        policy="backlog",
        category="general",
        query="q" * 60,
        content=content,
        producer="it",
        produced_at_ms=now_ms(),
    )
    verdicts = [
        Verdict(
            case_id=cand.case_id,
            attempt=1,
            candidate_id=cand.candidate_id,
            validator_id=voter,
            validator_version="1",
            vote=Vote.ACCEPT,
            confidence=0.9,
            severity=None,
            reasons=(),
            latency_ms=1,
            produced_at_ms=now_ms(),
        )
        for voter in VOTERS
    ]
    return cand, verdicts


def tally_settings(settings: Settings, tmp_path: Path, window_s: float) -> Settings:
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "backlog", VOTERS, accepts=3, window_seconds=window_s, max_attempts=2)
    return settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)


async def produce(settings: Settings, cases: Iterable[tuple[Candidate, list[Verdict]]]) -> None:
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="it-backlog", linger_ms=5)
    await producer.start()
    try:
        for cand, verdicts in cases:
            key = cand.case_id.encode()
            await producer.send(names.candidates, codec.encode(cand), key=key)
            for verdict in verdicts:
                await producer.send(names.verdicts, codec.encode(verdict), key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def test_a_backlog_is_decided_by_its_votes_not_by_the_wall_clock(
    settings: Settings, tmp_path: Path
) -> None:
    tuned = tally_settings(settings, tmp_path, window_s=WINDOW_S)
    names = TopicNames.from_settings(tuned)
    # Every verdict is produced within a second of its candidate.
    await produce(tuned, (case(i) for i in range(CASES)))
    # The tally starts only now, well after the windows would have closed by the wall clock.
    await asyncio.sleep(WINDOW_S + 1)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-backlog" / tuned.topic_prefix)
    await fleet.start(ProcessSpec.tally())
    try:
        for _ in range(60):  # until every case has its first decision
            passed = await read_topics(tuned, [names.passed], idle_s=1.0)
            retried = await read_topics(tuned, [names.retry], idle_s=0.5)
            if len(passed) + len(retried) >= CASES:
                break
    finally:
        await fleet.stop()
    assert (len(passed), len(retried)) == (CASES, 0)


async def test_a_candidate_larger_than_a_fetch_is_read_and_passed_whole(
    settings: Settings, tmp_path: Path
) -> None:
    # The candidate limit raised above one fetch (the default is below it).
    tuned = tally_settings(settings, tmp_path, window_s=30).with_overrides(
        max_candidate_bytes=MAX_PARTITION_FETCH_BYTES + 100_000
    )
    names = TopicNames.from_settings(tuned)
    large = "L" * (MAX_PARTITION_FETCH_BYTES + 50_000)  # one record, a larger batch
    cases = [case(i, content=large) if i % 4 == 0 else case(i) for i in range(12)]
    await produce(tuned, cases)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-large" / tuned.topic_prefix)
    await fleet.start(ProcessSpec.tally())
    try:
        for _ in range(60):  # until every case has passed
            passed = [
                codec.decode_as(raw, PassDecision)
                for raw in await read_topics(tuned, [names.passed], idle_s=1.0)
            ]
            if len(passed) >= len(cases):
                break
    finally:
        await fleet.stop()
    contents = {decision.case_id: decision.candidate.content for decision in passed}
    assert contents == {cand.case_id: cand.content for cand, _ in cases}
    assert not await read_topics(tuned, [names.deadletter], idle_s=0.5)
