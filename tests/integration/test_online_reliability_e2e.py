"""Online reliability weighting through the broker: the tally learns who is reliable from its
own decisions, and a restarted tally continues with what was learned (the model travels in the
state changelog with the cases); policies naming the same ``[reliability] model`` share it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Decision, PassDecision, Vote
from ratifier.core.topics import TopicNames
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_topics, verdict_on, wait_until
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec

POLICY = """
name = "{name}"
version = "l-1"
max_attempts = 1
window_seconds = 30
[reliability]
learn = "online"
{model}
[threshold]
ratio = 0.5000001
[[validators]]
id = "v1"
[[validators]]
id = "v2"
[[validators]]
id = "v3"
[[validators]]
id = "liar"
"""

# A 2-2 split: before learning, half the weight (not more than half: no pass); once the liar is
# known, v1 and v2 outweigh it and v3.
SPLIT = [("liar", Vote.REJECT), ("v3", Vote.REJECT), ("v1", Vote.ACCEPT), ("v2", Vote.ACCEPT)]


class _Cases:
    """Submits cases with their verdicts, and reads their decisions back from the broker."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings, self.producer = settings, producer
        self.names = TopicNames.from_settings(settings)

    async def decided(self, case_id: str) -> Decision:
        found: list[Decision] = []

        async def arrived() -> bool:
            values = await read_topics(self.settings, self.names.decisions, idle_s=0.5)
            found[:] = [d for d in map(codec.decode, values) if d.case_id == case_id]  # type: ignore[union-attr]
            return bool(found)

        await wait_until(arrived, 60, f"the decision for {case_id}")
        return found[0]

    async def case(self, client: Client, policy: str, votes: list[tuple[str, Vote]]) -> Candidate:
        candidate = client.candidate("x", policy=policy, case_id=str(uuid.uuid4()))
        await client.send(candidate)
        for validator_id, vote in votes:
            record = verdict_on(candidate, validator_id, vote, confidence=1.0)
            await self.producer.send_and_wait(
                self.names.verdicts, codec.encode(record), key=record.case_id.encode()
            )
        return candidate

    async def teach(self, client: Client, policy: str) -> None:
        """v1-v3 agree, the liar says the opposite (last, so it settles each case)."""
        for index in range(16):
            good = Vote.ACCEPT if index % 2 else Vote.REJECT
            bad = Vote.REJECT if good is Vote.ACCEPT else Vote.ACCEPT
            votes = [("v1", good), ("v2", good), ("v3", good), ("liar", bad)]
            last = await self.case(client, policy, votes)
        await self.decided(last.case_id)


def _learns(decision: Decision) -> None:
    assert isinstance(decision, PassDecision), decision
    assert decision.accept_share is not None
    assert decision.accept_share > 0.5  # the liar's rejection weighs less than v1's accept


@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine", ["transactional", "faust"])
async def test_learned_weights_survive_a_tally_restart(
    settings: Settings, tmp_path: Path, engine: str
) -> None:
    (tmp_path / "learn.toml").write_text(POLICY.format(name="learn", model=""))
    tuned = settings.with_overrides(policy_dir=tmp_path, tick_interval_s=0.2, tally_engine=engine)
    log_dir = tuned.state_dir / "it-online" / tuned.topic_prefix
    producer = make_producer(tuned, client_id="it-online")
    await producer.start()
    cases = _Cases(tuned, producer)
    try:
        fleet = Fleet(Fleet.env_for(tuned), log_dir)
        await fleet.start(ProcessSpec.tally())
        await fleet.wait_ready(tuned)
        async with Client(tuned) as client:
            first = await cases.case(client, "learn", SPLIT)
            assert not isinstance(await cases.decided(first.case_id), PassDecision)
            await cases.teach(client, "learn")
        await fleet.stop()  # a new tally process restores the state from the changelog

        fleet = Fleet(Fleet.env_for(tuned), log_dir)
        await fleet.start(ProcessSpec.tally())
        await fleet.wait_ready(tuned)
        async with Client(tuned) as client:
            after = await cases.case(client, "learn", SPLIT)
            _learns(await cases.decided(after.case_id))
    finally:
        await producer.stop()
        await fleet.stop()


@pytest.mark.timeout(300)
async def test_policies_naming_one_model_learn_together(settings: Settings, tmp_path: Path) -> None:
    for name in ("teacher", "pupil"):
        text = POLICY.format(name=name, model='model = "shared"')
        (tmp_path / f"{name}.toml").write_text(text)
    tuned = settings.with_overrides(policy_dir=tmp_path, tick_interval_s=0.2)
    producer = make_producer(tuned, client_id="it-online-shared")
    await producer.start()
    cases = _Cases(tuned, producer)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-online" / tuned.topic_prefix)
    try:
        await fleet.start(ProcessSpec.tally())
        await fleet.wait_ready(tuned)
        async with Client(tuned) as client:
            first = await cases.case(client, "pupil", SPLIT)
            assert not isinstance(await cases.decided(first.case_id), PassDecision)
            await cases.teach(client, "teacher")  # only the other policy's cases teach
            _learns(await cases.decided((await cases.case(client, "pupil", SPLIT)).case_id))
    finally:
        await producer.stop()
        await fleet.stop()
