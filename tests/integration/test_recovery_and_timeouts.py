"""Through the real broker: windows that time out, a tally that crashes, verdicts that come early.

The big end-to-end test has every validator answer in time and a tally that never dies; these
tests cover what happens when that is not so, each with its own small policy and fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ratifier.core.config import Settings
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
    now_ms,
)
from ratifier.core.topics import TopicNames
from ratifier.io.admin import ensure_topics
from ratifier.io.client import Client, assign_all
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.testing import verdict_on, wait_until, write_policy
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from ratifier.schemas import codec
from ratifier.streams.rules.tally import decision_id

pytestmark = pytest.mark.integration

DEMO_GENERATOR = "ratifier.app.demo.generator:improve"
# faust reads these from the environment: a SIGKILLed tally's group membership then expires in
# 6 s (the broker's minimum) instead of faust's 60 s default, so its successor takes over soon.
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}


# --- helpers -------------------------------------------------------------------------------------


async def start_fleet(
    settings: Settings, *specs: ProcessSpec, extra_env: dict[str, str] | None = None
) -> Fleet:
    """Start ``specs`` and wait until each one's consumer group is stable with all members.

    Windows open when the tally reads a candidate; a validator still starting then would make
    a short window time out for the wrong reason.
    """
    env = {**Fleet.env_for(settings), **(extra_env or {})}
    fleet = Fleet(env, settings.state_dir / "it-recovery" / settings.topic_prefix)
    await fleet.start(*specs)
    try:
        await fleet.wait_ready(settings)
    except BaseException:
        await fleet.stop()
        raise
    return fleet


@dataclass
class TopicTail:
    """Every record of some topics from the beginning, collected in the background.

    Reads the raw records, so a decision the tally published twice shows up twice here (the
    Client's ``decisions()`` would hide the repeat).
    """

    settings: Settings
    topics: tuple[str, ...]
    records: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # topic, key, value
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicTail:
        consumer = make_consumer(self.settings, group_id=None, client_id="it-tail")
        await consumer.start()
        try:
            await assign_all(consumer, self.topics, from_beginning=True)
        except BaseException:
            await consumer.stop()
            raise

        async def run() -> None:
            try:
                async for record in consumer:
                    self.records.append((record.topic, record.key or b"", record.value or b""))
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def keys(self, topic: str) -> set[bytes]:
        return {key for t, key, _ in self.records if t == topic}

    def decoded(self, topics: Iterable[str]) -> list[object]:
        wanted = set(topics)
        return [codec.decode(value) for t, _, value in self.records if t in wanted]


def decisions_of(tail: TopicTail, names: TopicNames) -> list[Decision]:
    out = tail.decoded(names.decisions)
    assert all(isinstance(d, PassDecision | RetryRequest | EscalationPacket) for d in out)
    return out  # type: ignore[return-value]


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return tmp_path / "policies"


# --- 1. a window that times out with some votes in -------------------------------------------


async def test_window_timeout_retries_with_partial_votes_then_escalates(
    settings: Settings, policy_dir: Path
) -> None:
    # judge-a votes the "truth" key (accept), judge-b the "truth_b" key; "silent" is in the
    # policy but never started. 2 of 3 stays reachable while silent is pending, so a candidate
    # judge-b rejects can only end by the window's deadline.
    window_s = 3
    write_policy(
        policy_dir,
        "timeout",
        ["judge-a", "judge-b", "silent"],
        accepts=2,
        window_seconds=window_s,
        max_attempts=2,
    )
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)
    names = TopicNames.from_settings(tuned)
    fleet = await start_fleet(
        tuned,
        ProcessSpec.tally(),
        ProcessSpec.validator("judge-a", SIMULATED, {"error_rate": 0.0, "seed": 1}),
        ProcessSpec.validator(
            "judge-b", SIMULATED, {"error_rate": 0.0, "seed": 2, "truth_key": "truth_b"}
        ),
        ProcessSpec.generator(DEMO_GENERATOR),
    )
    try:
        async with TopicTail(tuned, names.decisions) as tail, Client(tuned) as client:
            stuck = [
                client.candidate(
                    f"stuck answer {i}",
                    policy="timeout",
                    metadata={"truth": "accept", "truth_b": "reject", "next_truth": "accept"},
                )
                for i in range(3)
            ]
            # Control: both started judges accept, so it passes without waiting for silent.
            quick = client.candidate(
                "quick answer", policy="timeout", metadata={"truth": "accept", "truth_b": "accept"}
            )
            for candidate in [*stuck, quick]:
                await client.send(candidate)

            async def all_final() -> bool:
                assert not fleet.exited(), f"processes died: {fleet.exited()} ({fleet.log_dir})"
                finals = {
                    d.case_id
                    for d in decisions_of(tail, names)
                    if isinstance(d, PassDecision | EscalationPacket)
                }
                return finals >= {c.case_id for c in [*stuck, quick]}

            await wait_until(all_final, 45, "every case's final outcome")
            await asyncio.sleep(0.5)  # room for a wrong extra decision to show up
            decisions = decisions_of(tail, names)
    finally:
        await fleet.stop()

    by_case: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_case[d.case_id].append(d)

    (passed,) = by_case[quick.case_id]
    assert isinstance(passed, PassDecision)
    assert {v.validator_id for v in passed.votes} == {"judge-a", "judge-b"}
    assert passed.decided_at_ms - quick.produced_at_ms < window_s * 1000  # did not wait

    for candidate in stuck:
        retry, packet = sorted(by_case[candidate.case_id], key=lambda d: d.attempt)
        assert isinstance(retry, RetryRequest), by_case[candidate.case_id]
        assert retry.reason is FailureReason.WINDOW_TIMEOUT
        assert (retry.attempt, retry.next_attempt) == (1, 2)
        assert retry.candidate == candidate
        assert retry.missing_validators == ("silent",)
        assert {(v.validator_id, v.vote) for v in retry.votes} == {
            ("judge-a", Vote.ACCEPT),
            ("judge-b", Vote.REJECT),
        }
        assert [(v.validator_id, v.vote) for v in retry.dissent] == [("judge-b", Vote.REJECT)]
        assert retry.dissent[0].reasons, "a rejection carries its reasons"
        # Closed by the deadline, not earlier (the window opened after the candidate was made).
        assert retry.decided_at_ms - candidate.produced_at_ms >= window_s * 1000

        assert isinstance(packet, EscalationPacket), by_case[candidate.case_id]
        assert packet.reason is EscalationReason.WINDOW_TIMEOUT  # how the last attempt failed
        assert packet.outcome is OutcomeClass.UNRESOLVED
        assert [a.candidate.attempt for a in packet.attempts] == [1, 2]
        assert [a.failure for a in packet.attempts] == [FailureReason.WINDOW_TIMEOUT] * 2
        first, second = packet.attempts
        assert first.candidate == candidate
        assert second.candidate.previous_candidate_ids == (candidate.candidate_id,)
        assert second.candidate.content.startswith(candidate.content + " [revision 2")
        for record in packet.attempts:
            assert {v.validator_id for v in record.verdicts} == {"judge-a", "judge-b"}
            assert all(v.candidate_id == record.candidate.candidate_id for v in record.verdicts)


# --- 2. the tally crashes with windows open ------------------------------------------------------


@contextlib.asynccontextmanager
async def commit_probe(
    settings: Settings, group: str, topics: Iterable[str]
) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """A check: has ``group`` committed up to the end of every partition of ``topics``?"""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    consumer = make_consumer(settings, group_id=None, client_id="it-offsets")
    await admin.start()
    await consumer.start()
    try:
        await assign_all(consumer, topics, from_beginning=False)  # loads the partitions
        partitions = list(consumer.assignment())
        assert partitions, f"no partitions for {list(topics)}"

        async def committed_everything() -> bool:
            ends = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(group)
            return all(
                ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
                for tp in partitions
            )

        yield committed_everything
    finally:
        await consumer.stop()
        await admin.close()


async def test_tally_crash_recovers_open_windows_from_the_changelog(
    settings: Settings, policy_dir: Path
) -> None:
    cases = 6
    window_s = 10  # long enough that every window is still open when the tally dies
    write_policy(
        policy_dir,
        "crash",
        ["judge-a", "silent"],
        accepts=2,
        window_seconds=window_s,
        max_attempts=2,
    )
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)
    names = TopicNames.from_settings(tuned)
    fleet = await start_fleet(
        tuned,
        ProcessSpec.tally(),
        ProcessSpec.validator("judge-a", SIMULATED, {"error_rate": 0.0, "seed": 1}),
        ProcessSpec.generator(DEMO_GENERATOR),
        extra_env=FAST_FAILOVER,
    )
    try:
        async with (
            TopicTail(tuned, (*names.decisions, names.tally_changelog)) as tail,
            commit_probe(tuned, names.tally_app_id, (names.candidates, names.verdicts)) as probe,
            Client(tuned) as client,
        ):
            candidates = [
                client.candidate(f"answer {i}", policy="crash", metadata={"truth": "accept"})
                for i in range(cases)
            ]
            for candidate in candidates:
                await client.send(candidate)
            keys = {c.case_id.encode() for c in candidates}

            async def windows_open_and_committed() -> bool:
                assert not fleet.exited(), f"processes died: {fleet.exited()} ({fleet.log_dir})"
                # Each case's state (window open, judge-a's vote counted) is on the changelog,
                # and the tally committed its input offsets: nothing will be replayed, so
                # after the crash only the rebuilt deadline index can close these windows.
                return keys <= tail.keys(names.tally_changelog) and await probe()

            await wait_until(windows_open_and_committed, 8, "open windows on the changelog")
            assert not decisions_of(tail, names), "no window may close before its deadline"

            crashed_at = now_ms()
            assert await fleet.kill_process("tally") == -signal.SIGKILL
            await fleet.start(ProcessSpec.tally())  # same settings, same app id: a successor

            async def all_final() -> bool:
                assert not fleet.exited(), f"processes died: {fleet.exited()} ({fleet.log_dir})"
                finals = {d.case_id for d in decisions_of(tail, names) if d.attempt == 2}
                return finals >= {c.case_id for c in candidates}

            await wait_until(all_final, 60, "escalations after the tally's recovery")
            await asyncio.sleep(1.0)  # room for a wrong extra decision to show up
            decisions = decisions_of(tail, names)
            raw_ids = Counter(
                codec.decode(v).decision_id  # type: ignore[union-attr]
                for t, _, v in tail.records
                if t in names.decisions
            )
    finally:
        await fleet.stop()
    tally_log = (fleet.log_dir / "tally.log").read_text(errors="replace")  # both tallies

    by_case: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_case[d.case_id].append(d)
    for candidate in candidates:
        # One decision id per (case, attempt); a re-published decision would keep its id.
        ids = defaultdict(set)
        for d in by_case[candidate.case_id]:
            ids[d.attempt].add(d.decision_id)
        assert {a: len(s) for a, s in ids.items()} == {1: 1, 2: 1}, by_case[candidate.case_id]
        retry = next(d for d in by_case[candidate.case_id] if d.attempt == 1)
        assert isinstance(retry, RetryRequest)
        assert retry.reason is FailureReason.WINDOW_TIMEOUT
        assert retry.missing_validators == ("silent",)
        assert [v.validator_id for v in retry.votes] == ["judge-a"]  # restored with the window
        # Opened before the crash, closed after it by the successor, and not before the deadline.
        assert retry.decided_at_ms > crashed_at
        assert retry.decided_at_ms - candidate.produced_at_ms >= window_s * 1000
        packet = next(d for d in by_case[candidate.case_id] if d.attempt == 2)
        assert isinstance(packet, EscalationPacket)
        assert [a.candidate.attempt for a in packet.attempts] == [1, 2]
        assert packet.attempts[0].candidate == candidate
    # The successor found the open windows in the state it restored (its own log says so);
    # nothing was replayed to it, so that rebuilt index is what closed them.
    rebuilt = re.findall(r"deadline index rebuilt: (\d+) open cases", tally_log)
    assert len(rebuilt) >= 2, rebuilt  # at least the first tally's (empty) and its successor's
    assert int(rebuilt[-1]) == cases, rebuilt
    # Observed so far: every decision is on the topic exactly once (the tally committed its
    # inputs before the kill, and no deadline fired before it). A repeat would be allowed only
    # with the same decision id, which the per-attempt check above already enforces.
    repeats = {i: n for i, n in raw_ids.items() if n > 1}
    print(f"decisions re-published after the crash: {repeats or 'none'}")


# --- 3. verdicts that arrive before their candidate ---------------------------------------------


async def test_verdicts_before_their_candidate_are_held_then_counted_or_dead_lettered(
    settings: Settings, policy_dir: Path
) -> None:
    hold_ms = 3_000
    write_policy(
        policy_dir, "manual", ["v1", "v2", "v3"], accepts=2, window_seconds=10, max_attempts=1
    )
    tuned = settings.with_overrides(policy_dir=policy_dir, hold_ms=hold_ms, tick_interval_s=0.2)
    await ensure_topics(tuned)
    names = TopicNames.from_settings(tuned)
    fleet = await start_fleet(tuned, ProcessSpec.tally())
    producer = make_producer(tuned, client_id="it-early-verdicts")
    await producer.start()
    try:
        async with (
            TopicTail(tuned, (*names.decisions, names.deadletter, names.tally_changelog)) as tail,
            Client(tuned) as client,
        ):
            early = client.candidate("held answer", policy="manual")
            orphan = client.candidate("never sent", policy="manual")
            early_verdicts = [
                verdict_on(early, "v1", Vote.ACCEPT),
                verdict_on(early, "v2", Vote.ACCEPT),
            ]
            orphan_verdict = verdict_on(orphan, "v1", Vote.ACCEPT)
            for v in [*early_verdicts, orphan_verdict]:
                await producer.send_and_wait(
                    names.verdicts, codec.encode(v), key=v.case_id.encode()
                )

            async def held() -> bool:
                # The tally wrote both cases' held verdicts to its state: it has read them.
                return {early.case_id.encode(), orphan.case_id.encode()} <= tail.keys(
                    names.tally_changelog
                )

            await wait_until(held, hold_ms / 1000, "the tally to hold the early verdicts")
            await client.send(early)

            async def settled() -> bool:
                assert not fleet.exited(), f"processes died: {fleet.exited()} ({fleet.log_dir})"
                return bool(decisions_of(tail, names)) and bool(tail.keys(names.deadletter))

            await wait_until(settled, 20, "the decision and the dead letter")
            await asyncio.sleep(0.5)  # room for a wrong extra record to show up
            decisions = decisions_of(tail, names)
            letters = [x for x in tail.decoded([names.deadletter]) if isinstance(x, DeadLetter)]
    finally:
        await producer.stop()
        await fleet.stop()

    (decision,) = decisions
    assert isinstance(decision, PassDecision)
    assert decision.case_id == early.case_id
    assert decision.candidate == early
    assert {v.validator_id for v in decision.votes} == {"v1", "v2"}
    assert decision.accept_share == pytest.approx(2 / 3)

    (letter,) = letters
    assert letter.reason is DeadLetterReason.UNKNOWN_ATTEMPT
    assert codec.decode_as(letter.original, Verdict) == orphan_verdict
    assert letter.source_topic == names.verdicts
    assert letter.detail
    # Held for hold_ms from when the tally read it, which is after it was produced.
    assert letter.dead_at_ms - orphan_verdict.produced_at_ms >= hold_ms


# --- 4. a retry that is never answered -----------------------------------------------------------


async def test_a_retry_never_answered_escalates_after_the_retry_wait(
    settings: Settings, policy_dir: Path
) -> None:
    # No generator runs: the retry is published and nothing answers it.
    write_policy(policy_dir, "noretry", ["judge"], accepts=1, window_seconds=30, max_attempts=3)
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2, retry_wait_ms=2_000)
    names = TopicNames.from_settings(tuned)
    fleet = await start_fleet(
        tuned,
        ProcessSpec.tally(),
        ProcessSpec.validator("judge", SIMULATED, {"error_rate": 0.0, "seed": 1}),
    )
    try:
        async with TopicTail(tuned, (*names.decisions, names.deadletter)) as tail:
            async with Client(tuned) as client:
                candidate = await client.submit(
                    "an answer the judge rejects", policy="noretry", metadata={"truth": "reject"}
                )

                async def escalated() -> bool:
                    assert not fleet.exited(), f"processes died: {fleet.exited()}"
                    return any(isinstance(d, EscalationPacket) for d in decisions_of(tail, names))

                await wait_until(escalated, 30, "the escalation after the retry wait")
                # The attempt the generator never sent comes after all: the case is closed.
                late = dataclasses.replace(
                    candidate,
                    attempt=2,
                    candidate_id=f"{candidate.case_id}-late",
                    previous_candidate_ids=(candidate.candidate_id,),
                )
                await client.send(late)

                async def dead_lettered() -> bool:
                    return len(tail.keys(names.deadletter)) >= 2  # the candidate, its verdict

                await wait_until(dead_lettered, 30, "the late candidate's dead letter")
            decisions = decisions_of(tail, names)
            letters = [d for d in tail.decoded([names.deadletter]) if isinstance(d, DeadLetter)]
    finally:
        await fleet.stop()

    # The judge also judged the late candidate: its verdict cannot count either.
    by_topic = {letter.source_topic: letter for letter in letters}
    assert len(by_topic) == len(letters) == 2, letters
    assert by_topic[names.verdicts].reason is DeadLetterReason.UNKNOWN_ATTEMPT
    letter = by_topic[names.candidates]

    retry, packet = sorted(decisions, key=lambda d: d.attempt)
    assert isinstance(retry, RetryRequest)
    assert (retry.attempt, retry.reason) == (1, FailureReason.THRESHOLD_UNREACHABLE)
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.RETRY_TIMEOUT
    assert packet.decided_at_ms - retry.decided_at_ms >= 2_000
    # The escalation belongs to the attempt that never came: its id is never reused.
    assert packet.attempt == 2
    assert packet.decision_id == decision_id(candidate.case_id, 2) != retry.decision_id
    assert [a.candidate for a in packet.attempts] == [candidate]
    assert [v.validator_id for v in packet.attempts[0].verdicts] == ["judge"]
    assert letter.reason is DeadLetterReason.CASE_CLOSED
    assert codec.decode_as(letter.original, Candidate) == late
