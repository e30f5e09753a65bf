"""Through the real broker: a tally that starts behind a backlog must not time out its windows.

Candidates are a sixth of the records, so a tally reading a backlog reads them far ahead of their
verdicts. Windows measured by the wall clock alone then closed before verdicts that were already
in Kafka were read, and those cases were retried (~30 % in the 1M-case benchmark). Each
partition's time is now how far its inputs have been read (``streams/clock.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ratifier.config import Settings
from ratifier.fleet import Fleet, ProcessSpec
from ratifier.kafka import make_producer
from ratifier.models import Candidate, Verdict, Vote, now_ms
from ratifier.schemas import codec
from ratifier.testing import read_topics, write_policy
from ratifier.topics import TopicNames

pytestmark = pytest.mark.integration

CASES = 6_000
VOTERS = ("v1", "v2", "v3")
WINDOW_S = 1  # far shorter than the time the tally needs to read the backlog


def case(i: int) -> tuple[Candidate, list[Verdict]]:
    cand = Candidate(
        case_id=f"b{i:06d}",
        attempt=1,
        candidate_id=f"b{i:06d}-1",
        policy="backlog",
        category="general",
        query="q" * 60,
        content="a" * 300,
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


async def test_a_backlog_is_decided_by_its_votes_not_by_the_wall_clock(
    settings: Settings, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "backlog", VOTERS, accepts=3, window_seconds=WINDOW_S, max_attempts=2)
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)
    names = TopicNames.from_settings(tuned)
    producer = make_producer(tuned, client_id="it-backlog", linger_ms=5)
    await producer.start()
    try:
        for i in range(CASES):  # every verdict is produced within a second of its candidate
            cand, verdicts = case(i)
            key = cand.case_id.encode()
            await producer.send(names.candidates, codec.encode(cand), key=key)
            for verdict in verdicts:
                await producer.send(names.verdicts, codec.encode(verdict), key=key)
        await producer.flush()
    finally:
        await producer.stop()
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
