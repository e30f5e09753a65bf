"""Decision quality through the real broker and a real tally process: the pass's posterior
confidence and accept share, a complete packet held until every validator answered, the
escalation reason of a tie, and the retry guard (docs/policy.md)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.models import (
    Candidate,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    PassDecision,
    RetryRequest,
    Vote,
    now_ms,
)
from ratifier.core.topics import TopicNames
from ratifier.io.admin import ensure_topics
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_topics, verdict_on, wait_until
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec

VOTERS = ("v1", "v2", "v3", "v4", "v5")
POLICY = """
name = "quality"
version = "q-1"
max_attempts = 2
window_seconds = 30
complete_packets = true
[retry_guard]
max_similarity = 0.9
[threshold]
accepts = 3
""" + "".join(f'[[validators]]\nid = "{v}"\n' for v in VOTERS)


def retry_of(candidate: Candidate, content: str) -> Candidate:
    return dataclasses.replace(
        candidate,
        attempt=candidate.attempt + 1,
        candidate_id=str(uuid.uuid4()),
        content=content,
        previous_candidate_ids=(candidate.candidate_id,),
        produced_at_ms=now_ms(),
    )


@pytest.mark.timeout(300)
async def test_confidence_complete_packets_tie_and_retry_guard(
    settings: Settings, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "quality.toml").write_text(POLICY)
    tuned = settings.with_overrides(policy_dir=policies, tick_interval_s=0.2)
    await ensure_topics(tuned)
    names = TopicNames.from_settings(tuned)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-quality" / tuned.topic_prefix)
    await fleet.start(ProcessSpec.tally())
    producer = make_producer(tuned, client_id="it-quality")
    await producer.start()

    async def decisions() -> list[Decision]:
        out = [codec.decode(v) for v in await read_topics(tuned, names.decisions, idle_s=0.5)]
        return [d for d in out if isinstance(d, PassDecision | RetryRequest | EscalationPacket)]

    async def of_case(case_id: str, count: int) -> list[Decision]:
        found: list[Decision] = []

        async def arrived() -> bool:
            assert not fleet.exited(), f"tally died ({fleet.log_dir})"
            found[:] = sorted(
                (d for d in await decisions() if d.case_id == case_id),
                key=lambda d: d.decision_id,
            )
            return len(found) >= count

        await wait_until(arrived, 60, f"{count} decision(s) for case {case_id}")
        return found

    async def vote(candidate: Candidate, *votes: tuple[str, Vote]) -> None:
        for validator_id, choice in votes:
            record = verdict_on(candidate, validator_id, choice, confidence=1.0)
            await producer.send_and_wait(
                names.verdicts, codec.encode(record), key=record.case_id.encode()
            )

    try:
        await fleet.wait_ready(tuned)
        async with Client(tuned) as client:
            # 1. A pass: the posterior of 3 unanimous accepts at reliability 0.8, share 0.6.
            passing = client.candidate("Water boils at 100 C at sea level.", policy="quality")
            await client.send(passing)
            await vote(passing, ("v1", Vote.ACCEPT), ("v2", Vote.ACCEPT), ("v3", Vote.ACCEPT))
            [passed] = await of_case(passing.case_id, 1)
            assert isinstance(passed, PassDecision)
            assert passed.accept_share == pytest.approx(0.6)
            assert passed.confidence == pytest.approx(64 / 65)  # 0.8^3 / (0.8^3 + 0.2^3)

            # 2. A certain failure waits for every validator; then a near-identical retry is
            # escalated by the guard without a vote.
            failing = client.candidate("The Moon is made of cheese, surely.", policy="quality")
            await client.send(failing)
            await vote(failing, ("v1", Vote.REJECT), ("v2", Vote.REJECT), ("v3", Vote.REJECT))
            await vote(failing, ("v4", Vote.ACCEPT))
            held = [d for d in await decisions() if d.case_id == failing.case_id]
            assert held == [], "a failure must wait for v5 under complete_packets"
            await vote(failing, ("v5", Vote.ABSTAIN))
            [retry] = await of_case(failing.case_id, 1)
            assert isinstance(retry, RetryRequest)
            assert retry.reason is FailureReason.THRESHOLD_UNREACHABLE
            assert [v.validator_id for v in retry.votes] == list(VOTERS)
            again = retry_of(failing, "The Moon is made of cheese, surely!")
            await client.send(again)
            got = await of_case(failing.case_id, 2)
            [packet] = [d for d in got if isinstance(d, EscalationPacket)]
            assert packet.reason is EscalationReason.RETRY_NOT_DIFFERENT
            assert [a.failure for a in packet.attempts] == [
                FailureReason.THRESHOLD_UNREACHABLE,
                FailureReason.RETRY_NOT_DIFFERENT,
            ]

            # 3. A different retry is voted on; a 2-2 split (one abstains) escalates as a TIE.
            split = client.candidate("Paris is the capital of Spain.", policy="quality")
            await client.send(split)
            await vote(split, *((v, Vote.REJECT) for v in VOTERS))
            await of_case(split.case_id, 1)
            second = retry_of(split, "No: Madrid is the capital of Spain, Paris that of France.")
            await client.send(second)
            await vote(second, ("v1", Vote.ACCEPT), ("v2", Vote.REJECT), ("v3", Vote.ACCEPT))
            await vote(second, ("v4", Vote.REJECT), ("v5", Vote.ABSTAIN))
            got = await of_case(split.case_id, 2)
            [tie] = [d for d in got if isinstance(d, EscalationPacket)]
            assert tie.reason is EscalationReason.TIE
            assert [len(a.verdicts) for a in tie.attempts] == [5, 5]
    finally:
        await producer.stop()
        await fleet.stop()
