"""The tally processor: bytes in, routed records out, over an in-process case store.

Every test drives :class:`TallyProcessor` the way the faust agent does (``handle`` per record,
``tick`` from the timer) and decodes what comes back, so routing, dead-letter coordinates and
store bookkeeping are checked on the wire format itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

import pytest

from ratifier.core.errors import ConfigError
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    Reason,
    RetryRequest,
    Severity,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy, load_policies
from ratifier.core.topics import TopicNames
from ratifier.schemas import codec
from ratifier.streams.processor import InputRecord, Outgoing, TallyProcessor
from ratifier.streams.rules import tally
from ratifier.streams.rules.finished import marker_key
from ratifier.streams.rules.limits import MAX_VERDICT_BYTES, SizeLimits
from ratifier.streams.rules.state import CaseStatus, decode_state
from ratifier.streams.store import (
    HEADER_SIZE,
    DictCaseStore,
    entry_header,
    entry_state,
    pack_entry,
)

T0 = 1_700_000_000_000
CASE = "case-1"
KEY = CASE.encode()
TOPICS = TopicNames("rt")
# The defaults of RATIFIER_MAX_CANDIDATE_BYTES and RATIFIER_MAX_RECORD_BYTES.
LIMITS = SizeLimits(200_000, MAX_VERDICT_BYTES, 1_048_576)
SETTINGS = tally.TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=120_000)
WINDOW_MS = 30_000


# --- factories ---------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_policy(*, max_attempts: int = 2, name: str = "p", veto: str = "retry") -> Policy:
    data: dict[str, Any] = {
        "name": name,
        "version": "v1",
        "max_attempts": max_attempts,
        "window_seconds": WINDOW_MS // 1000,
        "threshold": {"accepts": 2},
        "veto": {"action": veto},
        "complete_packets": False,  # these tests read failures decided at once
        "validators": [
            {"id": "v1"},
            {"id": "v2"},
            {"id": "v3"},
            {"id": "rt", "role": "red-team"},
        ],
    }
    return Policy.from_mapping(data, "test")


def candidate(
    attempt: int = 1, case_id: str = CASE, policy: str = "p", content: str | None = None
) -> Candidate:
    return Candidate(
        case_id=case_id,
        attempt=attempt,
        candidate_id=f"{case_id}-cand-{attempt}",
        policy=policy,
        category="general",
        query="What is 2 + 2?",
        content=f"Answer {attempt}: 4" if content is None else content,
        producer="test",
        produced_at_ms=T0,
        metadata={"truth": "accept"},
    )


def verdict(
    validator_id: str,
    vote: Vote = Vote.ACCEPT,
    attempt: int = 1,
    case_id: str = CASE,
    severity: Severity | None = None,
) -> Verdict:
    reasons = () if vote is Vote.ACCEPT else (Reason("R1", f"{validator_id} objects"),)
    return Verdict(
        case_id=case_id,
        attempt=attempt,
        candidate_id=f"{case_id}-cand-{attempt}",
        validator_id=validator_id,
        validator_version="1",
        vote=vote,
        confidence=0.9,
        severity=severity,
        reasons=reasons,
        latency_ms=3,
        produced_at_ms=T0,
    )


def make_processor(
    *,
    policies: dict[str, Policy] | None = None,
    store: DictCaseStore | None = None,
    clock: Clock | None = None,
    limits: SizeLimits | None = None,
) -> tuple[TallyProcessor, DictCaseStore, Clock]:
    store = DictCaseStore() if store is None else store
    clock = Clock() if clock is None else clock
    policies = {"p": make_policy()} if policies is None else policies
    limits = LIMITS if limits is None else limits
    processor = TallyProcessor(TOPICS, policies, store, SETTINGS, clock=clock, limits=limits)
    return processor, store, clock


class Feeder:
    """Sends records to a processor with increasing offsets, as one partition would."""

    def __init__(self, processor: TallyProcessor, partition: int = 0) -> None:
        self.processor = processor
        self.partition = partition
        self.offset = 0

    def send(self, record: Candidate | Verdict, *, key: bytes | None = None) -> list[Outgoing]:
        topic = TOPICS.candidates if isinstance(record, Candidate) else TOPICS.verdicts
        self.offset += 1
        return self.processor.handle(
            topic,
            self.partition,
            self.offset,
            record.case_id.encode() if key is None else key,
            codec.encode(record),
        )

    def send_all(self, records: Iterable[Candidate | Verdict]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for record in records:
            out.extend(self.send(record))
        return out


def only(out: list[Outgoing]) -> Outgoing:
    assert len(out) == 1, out
    return out[0]


def dead_letter(out: list[Outgoing]) -> DeadLetter:
    record = only(out)
    assert record.topic == TOPICS.deadletter
    letter = codec.decode_as(record.value, DeadLetter)
    assert record.key == f"{letter.source_topic}:{letter.partition}:{letter.offset}".encode()
    return letter


def stored_status(store: DictCaseStore, key: bytes = KEY) -> CaseStatus | None:
    entry = store.get(key)
    return None if entry is None else decode_state(entry_state(entry)).status


# --- routing decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_attempts", "votes", "topic", "kind", "status"),
    [
        pytest.param(
            2,
            [("v1", Vote.ACCEPT), ("v2", Vote.ACCEPT)],
            TOPICS.passed,
            PassDecision,
            CaseStatus.PASSED,
            id="pass",
        ),
        pytest.param(
            2,
            [("v1", Vote.REJECT), ("v2", Vote.REJECT)],
            TOPICS.retry,
            RetryRequest,
            CaseStatus.AWAITING_RETRY,
            id="retry",
        ),
        pytest.param(
            1,
            [("v1", Vote.REJECT), ("v2", Vote.ABSTAIN)],
            TOPICS.escalate,
            EscalationPacket,
            CaseStatus.ESCALATED,
            id="escalate-at-max-attempts",
        ),
    ],
)
def test_a_decision_is_routed_to_its_topic_keyed_by_case(
    max_attempts: int,
    votes: list[tuple[str, Vote]],
    topic: str,
    kind: type[Any],
    status: CaseStatus,
) -> None:
    processor, store, _ = make_processor(policies={"p": make_policy(max_attempts=max_attempts)})
    feeder = Feeder(processor)
    assert feeder.send(candidate()) == []
    assert feeder.send(verdict(*votes[0])) == []
    # The red team has not answered, so only a failure can decide without it.
    if kind is PassDecision:
        assert feeder.send(verdict(*votes[1])) == []
        out = feeder.send(verdict("rt"))
    else:
        out = feeder.send(verdict(*votes[1]))
    record = only(out)
    assert record.topic == topic
    assert record.key == KEY
    decision = codec.decode_as(record.value, kind)
    assert decision.case_id == CASE
    assert decision.decision_id == tally.decision_id(CASE, 1)
    assert stored_status(store) is status
    assert processor.stats.decisions == {topic: 1}


def test_pass_decision_carries_candidate_votes_and_policy() -> None:
    processor, _, clock = make_processor()
    feeder = Feeder(processor)
    feeder.send(candidate())
    clock.now = T0 + 10
    feeder.send_all([verdict("v2"), verdict("v1")])
    clock.now = T0 + 20
    decision = codec.decode_as(only(feeder.send(verdict("rt"))).value, PassDecision)
    assert decision.attempt == 1
    assert decision.candidate == candidate()
    assert [v.validator_id for v in decision.votes] == ["rt", "v1", "v2"]
    assert decision.outcome is OutcomeClass.CONFIRMED
    assert (decision.policy, decision.policy_version) == ("p", "v1")
    assert decision.decided_at_ms == T0 + 20
    assert decision.accept_share == pytest.approx(2 / 3)
    assert decision.confidence > 0.5  # the posterior: two accepts, no rejection


def test_veto_with_escalate_action_goes_to_escalate_topic() -> None:
    processor, _, _ = make_processor(policies={"p": make_policy(veto="escalate")})
    feeder = Feeder(processor)
    feeder.send(candidate())
    out = feeder.send(verdict("rt", Vote.REJECT, severity=Severity.CRITICAL))
    record = only(out)
    assert record.topic == TOPICS.escalate
    packet = codec.decode_as(record.value, EscalationPacket)
    assert packet.reason is EscalationReason.VETO
    assert [a.failure for a in packet.attempts] == [FailureReason.VETO]


def test_retry_then_corrected_pass_on_second_attempt() -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send(candidate())
    retry_out = feeder.send_all([verdict("v1", Vote.REJECT), verdict("v2", Vote.REJECT)])
    retry = codec.decode_as(only(retry_out).value, RetryRequest)
    assert (retry.attempt, retry.next_attempt) == (1, 2)
    assert feeder.send(candidate(2)) == []
    out = feeder.send_all(
        [verdict("v1", attempt=2), verdict("v3", attempt=2), verdict("rt", attempt=2)]
    )
    decision = codec.decode_as(only(out).value, PassDecision)
    assert (decision.attempt, decision.outcome) == (2, OutcomeClass.CORRECTED)
    assert decision.decision_id == tally.decision_id(CASE, 2)
    assert stored_status(store) is CaseStatus.PASSED


# --- dead letters for bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        pytest.param(b"not avro at all", "", id="garbage"),
        pytest.param(b"", "empty message", id="empty"),
        pytest.param(None, "empty message", id="tombstone"),
        pytest.param(codec.encode(candidate())[:-3], "truncated", id="truncated"),
    ],
)
def test_malformed_bytes_are_dead_lettered_with_original_and_coordinates(
    value: bytes | None, detail: str
) -> None:
    processor, store, clock = make_processor()
    clock.now = T0 + 7
    letter = dead_letter(processor.handle(TOPICS.candidates, 2, 17, KEY, value))
    assert letter.reason is DeadLetterReason.MALFORMED
    assert letter.original == (value or b"")
    assert (letter.source_topic, letter.partition, letter.offset) == (TOPICS.candidates, 2, 17)
    assert detail in letter.detail
    assert letter.dead_at_ms == T0 + 7
    assert len(store) == 0
    assert processor.stats.candidates == 0
    assert processor.stats.dead_letters == {"MALFORMED": 1}


@pytest.mark.parametrize(
    ("topic", "record", "expected"),
    [
        pytest.param(TOPICS.candidates, verdict("v1"), "Candidate", id="verdict-on-candidates"),
        pytest.param(TOPICS.verdicts, candidate(), "Verdict", id="candidate-on-verdicts"),
    ],
)
def test_wrong_record_type_for_topic_is_malformed(
    topic: str, record: Candidate | Verdict, expected: str
) -> None:
    processor, store, _ = make_processor()
    raw = codec.encode(record)
    letter = dead_letter(processor.handle(topic, 0, 4, KEY, raw))
    assert letter.reason is DeadLetterReason.MALFORMED
    assert re.search(rf"expected \S*{expected}\b", letter.detail), letter.detail
    assert letter.original == raw
    assert len(store) == 0


@pytest.mark.parametrize(
    "key",
    [pytest.param(b"case-2", id="other-case"), pytest.param(None, id="no-key")],
)
@pytest.mark.parametrize("record", [candidate(), verdict("v1")], ids=["candidate", "verdict"])
def test_key_other_than_case_id_is_malformed(
    key: bytes | None, record: Candidate | Verdict
) -> None:
    processor, store, _ = make_processor()
    topic = TOPICS.candidates if isinstance(record, Candidate) else TOPICS.verdicts
    letter = dead_letter(processor.handle(topic, 1, 1, key, codec.encode(record)))
    assert letter.reason is DeadLetterReason.MALFORMED
    assert "is not its case id" in letter.detail
    assert letter.original == codec.encode(record)
    assert len(store) == 0


def test_candidate_for_unknown_policy_is_dead_lettered() -> None:
    processor, store, _ = make_processor()
    raw = codec.encode(candidate(policy="nope"))
    letter = dead_letter(processor.handle(TOPICS.candidates, 3, 9, KEY, raw))
    assert letter.reason is DeadLetterReason.UNKNOWN_POLICY
    assert "'nope'" in letter.detail
    assert "['p']" in letter.detail
    assert (letter.original, letter.partition, letter.offset) == (raw, 3, 9)
    assert len(store) == 0
    assert processor.stats.candidates == 1


def test_verdict_from_validator_outside_policy_is_dead_lettered() -> None:
    processor, store, _ = make_processor()
    processor.handle(TOPICS.candidates, 0, 1, KEY, codec.encode(candidate()))
    raw = codec.encode(verdict("ghost"))
    letter = dead_letter(processor.handle(TOPICS.verdicts, 0, 2, KEY, raw))
    assert letter.reason is DeadLetterReason.UNKNOWN_VALIDATOR
    assert "'ghost'" in letter.detail
    assert (letter.original, letter.source_topic, letter.offset) == (raw, TOPICS.verdicts, 2)
    assert stored_status(store) is CaseStatus.VOTING


def test_builtin_default_policy_is_usable() -> None:
    policies = load_policies()
    processor, _, _ = make_processor(policies=policies)
    feeder = Feeder(processor)
    feeder.send(candidate(policy="default"))
    votes = [verdict(v) for v in ("sim-a", "sim-b", "sim-c", "redteam")]
    decision = codec.decode_as(only(feeder.send_all(votes)).value, PassDecision)
    assert decision.policy == "default"
    letter = dead_letter(feeder.send(verdict("v1")))
    assert letter.reason is DeadLetterReason.UNKNOWN_VALIDATOR


# --- time: held verdicts, windows, pruning -----------------------------------------------------


def test_held_verdict_expired_by_tick_is_dead_lettered_with_its_own_origin() -> None:
    processor, store, clock = make_processor()
    held = verdict("v1")
    raw = codec.encode(held)
    assert processor.handle(TOPICS.verdicts, 1, 5, KEY, raw) == []
    assert stored_status(store) is CaseStatus.PENDING
    assert entry_header(store.get(KEY) or b"") == (1, T0 + SETTINGS.hold_ms)

    clock.now = T0 + SETTINGS.hold_ms - 1
    assert processor.tick({1}) == []
    clock.now = T0 + SETTINGS.hold_ms
    letter = dead_letter(processor.tick({1}))
    assert letter.reason is DeadLetterReason.UNKNOWN_ATTEMPT
    assert codec.decode_as(letter.original, Verdict) == held
    assert letter.original == raw
    assert (letter.source_topic, letter.partition, letter.offset) == (TOPICS.verdicts, 1, 5)
    assert letter.dead_at_ms == T0 + SETTINGS.hold_ms
    assert len(store) == 0  # nothing but an expired verdict: the case is forgotten
    assert len(processor.index) == 0


def test_held_verdict_is_counted_when_its_candidate_arrives() -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    assert feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")]) == []
    out = feeder.send(candidate())
    decision = codec.decode_as(only(out).value, PassDecision)
    assert [v.validator_id for v in decision.votes] == ["rt", "v1", "v2"]
    assert stored_status(store) is CaseStatus.PASSED


def test_window_timeout_on_tick_requests_a_retry() -> None:
    processor, store, clock = make_processor()
    feeder = Feeder(processor)
    feeder.send_all([candidate(), verdict("v1")])
    assert entry_header(store.get(KEY) or b"") == (0, T0 + WINDOW_MS)
    clock.now = T0 + WINDOW_MS - 1
    assert processor.tick({0}) == []
    clock.now = T0 + WINDOW_MS
    record = only(processor.tick({0}))
    assert (record.topic, record.key) == (TOPICS.retry, KEY)
    retry = codec.decode_as(record.value, RetryRequest)
    assert retry.reason is FailureReason.WINDOW_TIMEOUT
    assert retry.missing_validators == ("rt", "v2", "v3")
    assert retry.decided_at_ms == T0 + WINDOW_MS
    assert stored_status(store) is CaseStatus.AWAITING_RETRY
    # The case now waits for its retry; it is due again when that wait is over.
    assert entry_header(store.get(KEY) or b"") == (0, T0 + WINDOW_MS + SETTINGS.retry_wait_ms)
    assert processor.index.next_due_ms() == T0 + WINDOW_MS + SETTINGS.retry_wait_ms


def test_tick_leaves_partitions_not_active_alone() -> None:
    processor, store, clock = make_processor()
    Feeder(processor, partition=3).send(candidate())
    clock.now = T0 + WINDOW_MS
    assert processor.tick({0, 1}) == []
    assert stored_status(store) is CaseStatus.VOTING  # untouched: not ours any more
    processor.rebuild_index({3})  # ours again (a rebalance), or never lost: either way
    record = only(processor.tick({3}))
    assert record.topic == TOPICS.retry


def test_each_partition_is_ticked_by_its_own_clock() -> None:
    processor, store, clock = make_processor()
    Feeder(processor, partition=0).send(candidate())
    Feeder(processor, partition=1).send(candidate(case_id="c2"))
    clock.now = T0 + WINDOW_MS  # the wall clock says both windows are over ...
    behind = {0: T0 + 1_000, 1: T0 + WINDOW_MS}  # ... but partition 0 is read only to T0 + 1 s
    [record] = processor.tick({0, 1}, behind.__getitem__)
    assert (record.topic, record.key) == (TOPICS.retry, b"c2")
    assert stored_status(store) is CaseStatus.VOTING  # case-1 waits for its verdicts
    behind[0] = T0 + WINDOW_MS
    assert only(processor.tick({0, 1}, behind.__getitem__)).key == KEY


def test_records_are_handled_at_their_partitions_time() -> None:
    processor, store, _ = make_processor()
    late = T0 + 10 * WINDOW_MS  # the wall clock is far ahead; the partition's time is not
    processor.clock = lambda: late
    [record] = as_inputs([candidate()])
    out = processor.handle_batch([dataclasses.replace(record, now_ms=T0)])
    assert out == []
    state = decode_state(entry_state(store.get(KEY) or b""))
    assert state.latest is not None
    assert state.latest.deadline_ms == T0 + WINDOW_MS


def test_restart_rebuilds_due_times_from_the_store() -> None:
    store = DictCaseStore()
    clock = Clock()
    first, _, _ = make_processor(store=store, clock=clock)
    Feeder(first, partition=2).send(candidate())
    Feeder(first, partition=0).send(candidate(case_id="case-0"))
    Feeder(first, partition=2).send(verdict("v1", case_id="case-9"))  # held, no candidate

    second, _, _ = make_processor(store=store, clock=clock)
    assert len(second.index) == 0
    second.rebuild_index({1})
    assert len(second.index) == 0
    second.rebuild_index({2})
    assert len(second.index) == 2
    assert second.index.next_due_ms() == T0 + SETTINGS.hold_ms

    clock.now = T0 + WINDOW_MS - 1
    letter = dead_letter(second.tick({2}))  # the held verdict expired meanwhile
    assert letter.reason is DeadLetterReason.UNKNOWN_ATTEMPT
    clock.now = T0 + WINDOW_MS
    record = only(second.tick({2}))
    assert (record.topic, record.key) == (TOPICS.retry, KEY)
    assert codec.decode_as(record.value, RetryRequest).reason is FailureReason.WINDOW_TIMEOUT
    assert stored_status(store, b"case-0") is CaseStatus.VOTING  # partition 0 not rebuilt


def test_rebuild_ignores_entries_with_nothing_due() -> None:
    store = DictCaseStore()
    store.put(b"idle", 0, pack_entry(0, None, b"[]"))
    processor, _, _ = make_processor(store=store)
    processor.rebuild_index({0})
    assert len(processor.index) == 0
    assert processor.tick({0}) == []


def test_passed_case_is_pruned_from_the_store_after_retention() -> None:
    processor, store, clock = make_processor()
    feeder = Feeder(processor)
    clock.now = T0 + 100
    feeder.send(candidate())
    assert len(feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")])) == 1
    clock.now = T0 + 100 + SETTINGS.retention_ms - 1
    assert processor.tick({0}) == []
    assert len(store) == 1
    clock.now = T0 + 100 + SETTINGS.retention_ms
    assert processor.tick({0}) == []
    assert store.get(KEY) is None
    assert len(processor.index) == 0


def test_a_retry_never_answered_escalates_then_is_pruned_after_retention() -> None:
    processor, store, clock = make_processor()
    feeder = Feeder(processor)
    clock.now = T0 + 100
    feeder.send(candidate())
    assert len(feeder.send_all([verdict("v1", Vote.REJECT), verdict("v2", Vote.REJECT)])) == 1
    clock.now = T0 + 100 + SETTINGS.retry_wait_ms - 1
    assert processor.tick({0}) == []
    clock.now = T0 + 100 + SETTINGS.retry_wait_ms
    escalation = only(processor.tick({0}))
    assert escalation.topic == TOPICS.escalate
    packet = codec.decode_as(escalation.value, EscalationPacket)
    assert packet.reason is EscalationReason.RETRY_TIMEOUT
    assert stored_status(store) is CaseStatus.ESCALATED
    clock.now = T0 + 100 + SETTINGS.retry_wait_ms + SETTINGS.retention_ms
    assert processor.tick({0}) == []
    assert store.get(KEY) is None
    assert len(processor.index) == 0


def test_late_verdict_is_counted_in_stats_not_published() -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send_all([candidate(), verdict("v1"), verdict("v2"), verdict("rt")])
    assert feeder.send(verdict("v3")) == []
    assert processor.stats.late_verdicts == 1
    state = decode_state(entry_state(store.get(KEY) or b""))
    assert state.attempts[0].late == ("v3",)
    assert "v3" not in state.attempts[0].votes


def test_redelivered_late_verdict_is_counted_once() -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send_all([candidate(), verdict("v1"), verdict("v2"), verdict("rt")])
    feeder.send(verdict("v3"))
    assert feeder.send(verdict("v3")) == []  # the same record again (at-least-once delivery)
    state = decode_state(entry_state(store.get(KEY) or b""))
    assert (state.attempts[0].late, processor.stats.late_verdicts) == (("v3",), 1)


# --- failures inside the rules -----------------------------------------------------------------


def test_rule_raising_becomes_processing_error_and_processing_continues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send(candidate())

    def broken(*args: object, **kwargs: object) -> tally.Step:
        raise RuntimeError("boom")

    monkeypatch.setattr(tally, "on_verdict", broken)
    raw = codec.encode(verdict("v1"))
    letter = dead_letter(processor.handle(TOPICS.verdicts, 0, 42, KEY, raw))
    assert letter.reason is DeadLetterReason.PROCESSING_ERROR
    assert "boom" in letter.detail
    assert (letter.original, letter.offset) == (raw, 42)
    assert stored_status(store) is CaseStatus.VOTING
    # Candidates for other cases still go through while verdicts are broken.
    assert Feeder(processor).send(candidate(case_id="case-2")) == []
    monkeypatch.undo()

    out = feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")])
    assert only(out).topic == TOPICS.passed
    assert processor.stats.dead_letters == {"PROCESSING_ERROR": 1}


def test_tick_failure_is_retried_a_second_later(monkeypatch: pytest.MonkeyPatch) -> None:
    processor, _, clock = make_processor()
    Feeder(processor).send(candidate())
    clock.now = T0 + WINDOW_MS

    def broken(*args: object, **kwargs: object) -> tally.Step:
        raise RuntimeError("tick boom")

    monkeypatch.setattr(tally, "on_tick", broken)
    assert processor.tick({0}) == []
    monkeypatch.undo()
    assert processor.index.next_due_ms() == T0 + WINDOW_MS + 1_000
    clock.now = T0 + WINDOW_MS + 999
    assert processor.tick({0}) == []
    clock.now = T0 + WINDOW_MS + 1_000
    assert only(processor.tick({0})).topic == TOPICS.retry


# --- stats -------------------------------------------------------------------------------------


def test_stats_count_inputs_decisions_and_dead_letters() -> None:
    processor, _, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send_all([candidate(), verdict("v1"), verdict("v2"), verdict("rt")])
    feeder.send_all([candidate(case_id="c2"), verdict("v1", Vote.REJECT, case_id="c2")])
    feeder.send(verdict("v2", Vote.REJECT, case_id="c2"))
    feeder.send(verdict("ghost"))
    feeder.send(candidate(policy="nope", case_id="c3"))
    processor.handle(TOPICS.verdicts, 0, 99, KEY, b"junk")
    stats = processor.stats
    assert (stats.candidates, stats.verdicts, stats.late_verdicts) == (3, 6, 0)
    assert stats.decisions == {TOPICS.passed: 1, TOPICS.retry: 1}
    assert stats.dead_letters == {"UNKNOWN_VALIDATOR": 1, "UNKNOWN_POLICY": 1, "MALFORMED": 1}


# --- batches -----------------------------------------------------------------------------------


class CountingStore(DictCaseStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        self.writes.append(key)
        super().put(key, partition, entry)

    def delete(self, key: bytes, partition: int) -> None:
        self.writes.append(key)
        super().delete(key, partition)


def as_inputs(
    records: Iterable[Candidate | Verdict | bytes], partition: int = 0
) -> list[InputRecord]:
    inputs = []
    for offset, record in enumerate(records):
        if isinstance(record, bytes):
            inputs.append(InputRecord(TOPICS.verdicts, partition, offset, KEY, record))
            continue
        topic = TOPICS.candidates if isinstance(record, Candidate) else TOPICS.verdicts
        inputs.append(
            InputRecord(topic, partition, offset, record.case_id.encode(), codec.encode(record))
        )
    return inputs


def test_a_batch_writes_each_changed_case_once_and_decides_like_single_records() -> None:
    records = [candidate(), candidate(case_id="c2"), verdict("v1"), verdict("v1", case_id="c2")]
    records += [verdict("v2"), verdict("rt"), verdict("v2", Vote.REJECT, case_id="c2")]
    store = CountingStore()
    batched, _, _ = make_processor(store=store)
    single, single_store, _ = make_processor()

    out = batched.handle_batch(as_inputs(records))
    expected = Feeder(single).send_all(records)

    assert out == expected
    assert sorted(store.writes) == [b"c2", KEY, marker_key(KEY)]  # the marker: it passed
    assert dict(store.entries()) == dict(single_store.entries())


def test_a_bad_record_in_a_batch_costs_only_itself() -> None:
    processor, store, _ = make_processor()
    records: list[Candidate | Verdict | bytes] = [candidate(), verdict("v1"), b"junk"]
    records += [verdict("v2"), verdict("rt")]
    out = processor.handle_batch(as_inputs(records))
    assert [o.topic for o in out] == [TOPICS.deadletter, TOPICS.passed]
    state = decode_state(entry_state(store.get(KEY) or b""))
    assert state.status is CaseStatus.PASSED


def test_a_processing_error_parks_its_record_and_keeps_the_batchs_earlier_votes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor, store, _ = make_processor()
    Feeder(processor).send(candidate())
    real_on_verdict = tally.on_verdict

    def fail_on_v2(state: Any, record: Verdict, *args: Any) -> tally.Step:
        if record.validator_id == "v2":
            raise RuntimeError("boom")
        return real_on_verdict(state, record, *args)

    monkeypatch.setattr(tally, "on_verdict", fail_on_v2)
    out = processor.handle_batch(as_inputs([verdict("v1"), verdict("v2"), verdict("v3")]))
    assert [(o.topic, decode_dead_letter_reason(o)) for o in out] == [
        (TOPICS.deadletter, DeadLetterReason.PROCESSING_ERROR)
    ]
    latest = decode_state(entry_state(store.get(KEY) or b"")).latest
    assert latest is not None
    assert sorted(latest.votes) == ["v1", "v3"]  # v2 parked, its neighbours counted


def test_a_failure_while_building_outputs_leaves_the_case_undecided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send_all([candidate(), verdict("v1"), verdict("rt")])
    saved = store.get(KEY)
    real_encode = codec.encode

    def fail_on_pass(record: Any) -> bytes:
        if isinstance(record, PassDecision):
            raise RuntimeError("boom")
        return real_encode(record)

    monkeypatch.setattr(codec, "encode", fail_on_pass)
    letter = dead_letter(feeder.send(verdict("v2")))
    assert letter.reason is DeadLetterReason.PROCESSING_ERROR
    assert store.get(KEY) == saved  # not marked passed without its pass decision
    assert processor.stats.decisions == {}


def decode_dead_letter_reason(record: Outgoing) -> DeadLetterReason:
    return codec.decode_as(record.value, DeadLetter).reason


# --- the store ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition", "due_ms", "state"),
    [
        (0, None, b""),
        (0, 0, b"x"),
        (7, T0, b"[1,2,3]"),
        (65_535, 2**63 - 1, b"\x00\xff" * 10),
    ],
)
def test_store_entry_header_round_trips(partition: int, due_ms: int | None, state: bytes) -> None:
    entry = pack_entry(partition, due_ms, state)
    assert len(entry) == HEADER_SIZE + len(state)
    assert entry_header(entry) == (partition, due_ms)
    assert entry_state(entry) == state


def test_dict_case_store_behaves_like_a_mapping() -> None:
    store = DictCaseStore()
    assert (store.get(b"a"), len(store), list(store.entries())) == (None, 0, [])
    store.put(b"a", 0, b"1")
    store.put(b"b", 1, b"2")
    store.put(b"a", 0, b"3")
    assert store.get(b"a") == b"3"
    entries = store.entries()
    store.delete(b"b", 1)  # entries() is a snapshot: deleting while iterating is safe
    assert sorted(entries) == [(b"a", b"3"), (b"b", b"2")]
    store.delete(b"missing", 0)
    assert (len(store), store.get(b"b")) == (1, None)


# --- size limits -------------------------------------------------------------------------------

SMALL_LIMITS = SizeLimits(
    max_candidate_bytes=2_000, max_verdict_bytes=1_000, max_record_bytes=4_000
)


def test_an_oversized_candidate_is_dead_lettered_before_it_touches_state() -> None:
    processor, store, _ = make_processor(limits=SMALL_LIMITS)
    big = candidate(content="x" * 3_000)
    raw = codec.encode(big)
    letter = dead_letter(Feeder(processor).send(big))
    assert letter.reason is DeadLetterReason.TOO_LARGE
    assert f"{len(raw)} bytes, more than the limit of 2000" in letter.detail
    assert letter.original == raw[: len(letter.original)]  # an excerpt, never more than the limit
    assert len(store) == 0


def test_an_oversized_verdict_is_dead_lettered_and_the_case_goes_on() -> None:
    processor, _, _ = make_processor(limits=SMALL_LIMITS)
    feeder = Feeder(processor)
    feeder.send(candidate())
    huge = dataclasses.replace(verdict("v1"), reasons=(Reason("R1", "y" * 2_000),))
    assert dead_letter(feeder.send(huge)).reason is DeadLetterReason.TOO_LARGE
    out = feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")])
    assert [o.topic for o in out] == [TOPICS.passed]


def test_a_record_that_would_make_the_state_too_large_is_dead_lettered() -> None:
    # Each candidate fits; three attempts of them would not: the third is refused, state kept.
    limits = SizeLimits(max_candidate_bytes=3_000, max_verdict_bytes=1_000, max_record_bytes=6_000)
    policies = {"p": make_policy(max_attempts=3)}
    processor, store, _ = make_processor(limits=limits, policies=policies)
    feeder = Feeder(processor)
    for attempt in (1, 2):
        feeder.send(candidate(attempt=attempt, content="z" * 2_500))
        feeder.send_all([verdict("v1", Vote.REJECT, attempt), verdict("v2", Vote.REJECT, attempt)])
    before = store.get(KEY)
    letter = dead_letter(feeder.send(candidate(attempt=3, content="z" * 2_500)))
    assert letter.reason is DeadLetterReason.TOO_LARGE
    assert "state would be" in letter.detail
    assert store.get(KEY) == before


def test_policies_that_could_outgrow_the_record_limit_are_refused() -> None:
    policy = make_policy(max_attempts=3)
    SizeLimits(2_000, 1_000, 100_000).check_policy(policy)
    with pytest.raises(ConfigError, match="RATIFIER_MAX_CANDIDATE_BYTES"):
        SizeLimits(200_000, 16_384, 300_000).check_policy(policy)


# --- online reliability: learned weights, persisted in the store (learned_models.py) --------


def learning_policy() -> Policy:
    data: dict[str, Any] = {
        "name": "learn",
        "version": "v1",
        "max_attempts": 1,
        "window_seconds": WINDOW_MS // 1000,
        "threshold": {"ratio": 0.5000001},
        "reliability": {"learn": "online", "prior": 0.8, "strength": 2.0},
        "validators": [{"id": "v1"}, {"id": "v2"}, {"id": "v3"}, {"id": "liar"}],
    }
    return Policy.from_mapping(data, "test")


def test_online_policy_learns_weights_and_keeps_them_in_the_store() -> None:
    import orjson

    from ratifier.core.calibration import OnlineReliability
    from ratifier.streams.learned_models import is_model_key, model_key

    policies = {"learn": learning_policy()}
    processor, store, _ = make_processor(policies=policies)
    feeder = Feeder(processor)
    # Twenty cases: v1-v3 agree, "liar" always votes the other way (after the others).
    for index in range(20):
        case = f"case-{index}"
        good = Vote.ACCEPT if index % 2 else Vote.REJECT
        bad = Vote.REJECT if good is Vote.ACCEPT else Vote.ACCEPT
        feeder.send(candidate(case_id=case, policy="learn"))
        feeder.send_all(verdict(v, good, case_id=case) for v in ("v1", "v2", "v3"))
        feeder.send(verdict("liar", bad, case_id=case))
    entry = store.get(model_key(0, "learn"))
    assert entry is not None
    assert entry_header(entry) == (0, None)  # never due: the deadline index skips it
    model = OnlineReliability.from_json(orjson.loads(entry_state(entry)))
    assert model.reliability("v1") > 0.9 > 0.6 > model.reliability("liar")
    assert sum(1 for key, _ in store.entries() if is_model_key(key)) == 1
    # A processor restarted over the same store (as after a rebalance) uses the learned weights:
    # a 2-2 split that equal weights would fail (share 0.5) passes when the liar is on the
    # rejecting side.
    restarted, _, _ = make_processor(policies=policies, store=store)
    again = Feeder(restarted)
    again.send(candidate(case_id="late", policy="learn"))
    split = [
        verdict("liar", Vote.REJECT, case_id="late"),
        verdict("v3", Vote.REJECT, case_id="late"),
        verdict("v1", case_id="late"),
        verdict("v2", case_id="late"),
    ]
    decided = again.send_all(split)
    assert [o.topic for o in decided] == [TOPICS.passed]
    passed = codec.decode_as(decided[0].value, PassDecision)
    assert passed.accept_share is not None
    assert passed.accept_share > 0.5
    # The same split under equal weights fails.
    fixed = dataclasses.replace(learning_policy(), learn_reliability=False)
    equal, _, _ = make_processor(policies={"learn": fixed})
    plain = Feeder(equal)
    plain.send(candidate(case_id="late", policy="learn"))
    assert [o.topic for o in plain.send_all(split)] == [TOPICS.escalate]


def test_fixed_policies_write_no_model() -> None:
    from ratifier.streams.learned_models import is_model_key

    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send(candidate())
    feeder.send_all([verdict("v1"), verdict("v2"), verdict("v3"), verdict("rt")])
    assert not any(is_model_key(key) for key, _ in store.entries())
