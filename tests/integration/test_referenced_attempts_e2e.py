"""Earlier attempts by reference, through the broker: a real tally under a policy with
``earlier_attempts = "referenced"``, a simulated judge that rejects everything, and this test as
the generator. The escalation packet carries attempts 1 and 2 as stubs naming their retry
requests, and ``ratifier.io.attempts.full_attempts`` reads them back in full from the retry topic.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from ratifier.app.configs import review_config
from ratifier.core.config import Settings
from ratifier.core.models import Candidate, EscalationPacket, RetryRequest
from ratifier.core.topics import TopicNames
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.features.review.runtime.feeder import ReviewFeeder
from ratifier.io.attempts import full_attempts
from ratifier.io.client import Client
from ratifier.io.testing import wait_until
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from tests.integration.review_support import redis_for

pytestmark = pytest.mark.integration

POLICY = """\
name = "chain"
version = "chain-1"
max_attempts = 3
window_seconds = 20
earlier_attempts = "referenced"
[threshold]
accepts = 1
[[validators]]
id = "judge"
"""


@pytest.mark.timeout(180)
async def test_a_referenced_packet_resolves_to_its_retry_requests(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "chain.toml").write_text(POLICY)
    tuned = settings.with_overrides(policy_dir=tmp_path, tick_interval_s=0.2)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-referenced" / tuned.topic_prefix)
    retries: list[RetryRequest] = []
    packets: list[EscalationPacket] = []
    try:
        await fleet.start(
            ProcessSpec.tally(), ProcessSpec.validator("judge", SIMULATED, {"error_rate": 0.0})
        )
        await fleet.wait_ready(tuned)
        async with Client(tuned) as client:
            first = await client.submit(
                "attempt 1: " + "a long answer " * 40, policy="chain", metadata={"truth": "reject"}
            )
            sent: dict[int, Candidate] = {1: first}

            async def generate() -> None:  # the generator: each retry gets a different answer
                async for decision in client.decisions(from_beginning=True):
                    if isinstance(decision, RetryRequest) and decision.case_id == first.case_id:
                        retries.append(decision)
                        n = decision.next_attempt
                        sent[n] = dataclasses.replace(
                            first,
                            attempt=n,
                            candidate_id=f"{first.case_id}-{n}",
                            content=f"attempt {n}: " + "another answer " * 40,
                            previous_candidate_ids=tuple(
                                sent[k].candidate_id for k in sorted(sent)
                            ),
                        )
                        await client.send(sent[n])
                    elif isinstance(decision, EscalationPacket):
                        packets.append(decision)

            generator = asyncio.create_task(generate())

            async def escalated() -> bool:
                assert not fleet.exited(), f"tally died ({fleet.log_dir})"
                return bool(packets)

            await wait_until(escalated, 90, "the escalation after three rejected attempts")
            generator.cancel()
            [packet] = packets
            resolved = await full_attempts(
                tuned.kafka_connection(), TopicNames.from_settings(tuned), packet
            )
        # The review queue's feeder queues the packet with its attempts resolved.
        async with redis_for(tuned) as redis:
            queue = ReviewQueue(redis, review_config(tuned), reviewers=None)
            feeder = ReviewFeeder(review_config(tuned), redis)
            stop = asyncio.Event()
            await feeder.start()
            feeding = asyncio.create_task(feeder.run(stop))
            try:
                await wait_until(
                    lambda: _queued(queue, first.case_id), 30, "the packet in the review queue"
                )
            finally:
                stop.set()
                await feeding
                await feeder.stop()
            queued = await queue.require(first.case_id)
    finally:
        await fleet.stop()

    assert [r.attempt for r in retries] == [1, 2]
    stubs = packet.attempts[:2]
    assert [a.retry_decision_id for a in stubs] == [r.decision_id for r in retries]
    assert all(a.candidate.content == "" and not a.verdicts[0].reasons for a in stubs)
    assert packet.attempts[2].candidate == sent[3]
    assert packet.attempts[2].verdicts[0].reasons  # the last attempt is carried in full
    # Resolved: the candidates and verdicts exactly as the retry requests published them.
    assert [a.candidate for a in resolved] == [sent[1], sent[2], sent[3]]
    assert [a.verdicts for a in resolved[:2]] == [r.votes for r in retries]
    assert resolved[2] == packet.attempts[2]
    assert queued.packet.attempts == resolved
    assert queued.packet.decision_id == packet.decision_id


async def _queued(queue: ReviewQueue, case_id: str) -> bool:
    return await queue.get(case_id) is not None
