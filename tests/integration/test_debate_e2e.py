"""Debate rounds through the broker (docs/debate.md): a real tally process under a [debate]
policy, three in-process validators whose judge records what it was shown, and this test as the
producer. Round 2's judges see round 1's verdicts with their reasons (anonymised); a unanimous
first round still runs min_rounds; a split debate fails at max_rounds (NO_SUPERMAJORITY); a tally
killed while a round is open restarts with the round in its changelog state and decides it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.models import (
    Candidate,
    Decision,
    EscalationPacket,
    FailureReason,
    Judgement,
    PassDecision,
    PeerVerdict,
    Reason,
    RoundRequest,
    Severity,
    Verdict,
    Vote,
    now_ms,
)
from ratifier.core.topics import TopicNames
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_records, running, wait_until
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec
from ratifier.streams.rules.tally import round_request_id
from ratifier.validators.runtime import CandidateCache, Peers, ValidatorWorker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

POLICY = """\
name = "debate"
version = "debate-1"
max_attempts = 1
window_seconds = 60
[threshold]
accepts = 2
[debate]
min_rounds = 2
max_rounds = 3
supermajority = 0.75
anonymise = true
[[validators]]
id = "a"
[[validators]]
id = "b"
[[validators]]
id = "c"
"""
VALIDATORS = ("a", "b", "c")


class Debater:
    """A judge that debates: votes from a script, records each round's peers, and holds the
    'restart' case's round 2 until the test lets it go."""

    def __init__(self, validator_id: str, release: asyncio.Event) -> None:
        self.validator_id = validator_id
        self.release = release
        self.seen: list[tuple[str, int, Peers | None]] = []

    async def __call__(self, candidate: Candidate, peers: Peers | None = None) -> Judgement:
        round_ = 1 if peers is None else peers.round
        self.seen.append((candidate.case_id, round_, peers))
        if candidate.case_id == "restart" and round_ == 2:
            await self.release.wait()
        accept = candidate.case_id != "split" or self.validator_id != "b"
        vote = Vote.ACCEPT if accept else Vote.REJECT
        why = Reason("debate.test", f"{self.validator_id} on {candidate.case_id} round {round_}")
        severity = None if accept else Severity.MAJOR
        return Judgement(vote, 0.8, severity, (why,))


async def test_a_debate_runs_its_rounds_through_the_broker(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "debate.toml").write_text(POLICY)
    tuned = settings.with_overrides(policy_dir=tmp_path, tick_interval_s=0.2)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-debate" / tuned.topic_prefix)
    release = asyncio.Event()
    judges = {v: Debater(v, release) for v in VALIDATORS}
    decisions: dict[str, Decision] = {}
    try:
        await fleet.start(ProcessSpec.tally())
        await fleet.wait_ready(tuned)
        workers = [ValidatorWorker(tuned, v, judges[v]) for v in VALIDATORS]
        async with running(*workers), Client(tuned) as client:

            async def watch() -> None:
                async for decision in client.decisions(from_beginning=True):
                    decisions[decision.case_id] = decision

            watcher = asyncio.create_task(watch())
            for case in ("unanimous", "split", "restart"):
                await client.send(client.candidate(f"answer {case}", policy="debate", case_id=case))

            def in_round_two(case: str) -> bool:
                return all((case, 2) in {(c, r) for c, r, _ in j.seen} for j in judges.values())

            async def restart_case_in_round_two() -> bool:
                assert not fleet.exited(), f"tally died ({fleet.log_dir})"
                return in_round_two("restart")

            await wait_until(restart_case_in_round_two, 60, "round 2 of case 'restart' opened")
            # Crash the tally while round 2 is open; its successor restores the round.
            assert await fleet.kill_process("tally") == -signal.SIGKILL
            await fleet.start(fleet.spec_of("tally"))
            await fleet.wait_tally_ready(tuned, "tally", 60)
            release.set()

            async def all_decided() -> bool:
                assert not fleet.exited(), f"tally died ({fleet.log_dir})"
                return {"unanimous", "split", "restart"} <= decisions.keys()

            await wait_until(all_decided, 90, "the three debates decided")
            watcher.cancel()
    finally:
        await fleet.stop()

    unanimous = decisions["unanimous"]
    assert isinstance(unanimous, PassDecision)  # unanimous in round 1, yet min_rounds = 2
    assert [r.round for r in unanimous.rounds] == [1]
    assert {v.round for v in unanimous.votes} == {2}
    assert len(unanimous.rounds[0].verdicts) == 3

    # Round 2's judges were shown round 1's verdicts with their reasons, anonymised.
    (shown,) = [p for c, r, p in judges["a"].seen if c == "split" and r == 2]
    assert shown is not None
    assert sorted(p.peer for p in shown.verdicts) == ["peer 1", "peer 2", "you"]
    messages = {r.message for p in shown.verdicts for r in p.reasons}
    assert messages == {f"{v} on split round 1" for v in VALIDATORS}
    assert {p.vote for p in shown.verdicts if p.peer != "you"} == {Vote.ACCEPT, Vote.REJECT}

    split = decisions["split"]  # 2 of 3 accept in every round: 0.67 < 0.75 until max_rounds
    assert isinstance(split, EscalationPacket)
    (attempt,) = split.attempts
    assert attempt.failure is FailureReason.NO_SUPERMAJORITY
    assert [r.round for r in attempt.rounds] == [1, 2]
    assert {v.round for v in attempt.verdicts} == {3}
    assert sorted(r for c, r, _ in judges["b"].seen if c == "split") == [1, 2, 3]

    restart = decisions["restart"]  # decided by the restarted tally from its restored state
    assert isinstance(restart, PassDecision)
    assert [r.round for r in restart.rounds] == [1]
    assert {v.round for v in restart.votes} == {2}


async def test_a_validator_that_never_saw_the_candidate_reads_it_for_its_round(
    settings: Settings, tmp_path: Path
) -> None:
    # A restarted validator (or another instance) gets round 2 with an empty cache: it reads the
    # candidate from the case's partition of the candidates topic, judges it with the peers and
    # answers with the round.
    (tmp_path / "debate.toml").write_text(POLICY)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    names = TopicNames.from_settings(tuned)
    release = asyncio.Event()
    release.set()
    judge = Debater("a", release)
    worker = ValidatorWorker(tuned, "a", judge)
    worker.candidates = CandidateCache(entries=0)  # it keeps nothing: every round reads
    async with Client(tuned) as client:
        for n in range(20):  # other cases' candidates around it on the partitions
            await client.send(client.candidate(f"other {n}", policy="debate", case_id=f"o{n}"))
        wanted = client.candidate("the answer", policy="debate", case_id="late-joiner")
        await client.send(wanted)
    peers = (PeerVerdict("b", Vote.REJECT, 0.9, Severity.MAJOR, (Reason("x", "b's reason"),)),)
    request = RoundRequest(
        round_request_id("late-joiner", 1, 2), "late-joiner", 1, wanted.candidate_id, "debate",
        2, peers, False, now_ms(), now_ms() + 60_000,
    )  # fmt: skip
    producer = make_producer(tuned, client_id="test-rounds")
    await producer.start()
    try:
        await producer.send_and_wait(names.rounds, codec.encode(request), key=b"late-joiner")
    finally:
        await producer.stop()
    async with running(worker):

        async def answered() -> bool:
            return any(c == "late-joiner" and r == 2 for c, r, _ in judge.seen)

        await wait_until(answered, 60, "the round-2 call for the late joiner")
    assert worker.rounds_judged == 1
    assert worker.rounds_without_candidate == 0
    ((_, _, shown),) = [s for s in judge.seen if s[0] == "late-joiner" and s[1] == 2]
    assert shown is not None
    assert [(p.peer, p.reasons[0].message) for p in shown.verdicts] == [("b", "b's reason")]
    verdicts = [
        codec.decode_as(r.value or b"", Verdict)
        for r in await read_records(tuned, [names.verdicts])
        if r.key == b"late-joiner"
    ]
    assert sorted(v.round or 1 for v in verdicts) == [1, 2]
