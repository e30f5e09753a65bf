"""The memory of finished cases: a case decided and pruned long ago still has one outcome."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from ratifier.core.models import (
    DeadLetterReason,
    EscalationPacket,
    PassDecision,
    Vote,
)
from ratifier.schemas import codec
from ratifier.streams import processor as processor_module
from ratifier.streams.rules.finished import (
    Finished,
    decode_marker,
    encode_marker,
    finished_by,
    marker_decided_at,
    marker_key,
)
from tests.unit.test_tally_processor import (
    KEY,
    SETTINGS,
    T0,
    TOPICS,
    Feeder,
    candidate,
    dead_letter,
    make_policy,
    make_processor,
    only,
    verdict,
)

HORIZON_MS = SETTINGS.finished_horizon_ms or 0


def test_a_marker_is_27_bytes_and_round_trips() -> None:
    finished = Finished(str(uuid.uuid4()), "escalate", 3, T0)
    marker = encode_marker(finished)
    assert len(marker) == 27
    assert decode_marker(marker) == finished
    assert marker_decided_at(marker) == T0


def passed_and_pruned() -> tuple[Feeder, PassDecision]:
    """A case passed at T0 + 100, then pruned at the end of its retention."""
    processor, store, clock = make_processor()
    feeder = Feeder(processor)
    clock.now = T0 + 100
    feeder.send(candidate())
    out = feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")])
    decision = codec.decode_as(only(out).value, PassDecision)
    clock.now = T0 + 100 + SETTINGS.retention_ms
    processor.tick({0})
    assert store.get(KEY) is None  # the state is gone ...
    assert store.get(marker_key(KEY)) is not None  # ... its marker stays
    return feeder, decision


def test_a_resubmission_after_pruning_is_closed_naming_the_final_decision() -> None:
    feeder, decision = passed_and_pruned()
    again = dataclasses.replace(candidate(), candidate_id="another", content="other content")
    letter = dead_letter(feeder.send(again))
    assert letter.reason is DeadLetterReason.CASE_CLOSED
    assert letter.closed_by is not None
    assert letter.closed_by.decision_id == decision.decision_id
    assert (letter.closed_by.outcome, letter.closed_by.attempt) == ("pass", 1)
    assert decision.decision_id in letter.detail
    assert feeder.processor.store.get(KEY) is None  # no new case was opened


def test_a_replayed_verdict_after_pruning_is_closed_not_held() -> None:
    feeder, decision = passed_and_pruned()
    letter = dead_letter(feeder.send(verdict("v1")))
    assert letter.reason is DeadLetterReason.CASE_CLOSED
    assert letter.closed_by is not None
    assert letter.closed_by.decision_id == decision.decision_id


def test_a_resubmission_within_retention_also_names_the_final_decision() -> None:
    processor, _, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send(candidate())
    decision = codec.decode_as(
        only(feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")])).value, PassDecision
    )
    again = dataclasses.replace(candidate(), candidate_id="another")
    letter = dead_letter(feeder.send(again))
    assert letter.reason is DeadLetterReason.CASE_CLOSED
    assert letter.closed_by is not None
    assert letter.closed_by.decision_id == decision.decision_id


def test_an_escalation_leaves_a_marker_too() -> None:
    processor, store, _ = make_processor(policies={"p": make_policy(max_attempts=1)})
    feeder = Feeder(processor)
    feeder.send(candidate())
    out = feeder.send_all([verdict("v1", Vote.REJECT), verdict("v2", Vote.REJECT)])
    packet = codec.decode_as(only(out).value, EscalationPacket)
    marker = store.get(marker_key(KEY))
    assert marker is not None
    assert decode_marker(marker) == finished_by(packet)
    assert decode_marker(marker).outcome == "escalate"


def test_a_retry_request_leaves_no_marker() -> None:
    processor, store, _ = make_processor()
    feeder = Feeder(processor)
    feeder.send(candidate())
    out = feeder.send_all([verdict("v1", Vote.REJECT), verdict("v2", Vote.REJECT)])
    assert only(out).topic == TOPICS.retry
    assert store.get(marker_key(KEY)) is None


def test_markers_expire_at_the_horizon_then_the_case_id_is_new_again() -> None:
    feeder, _ = passed_and_pruned()
    processor, store = feeder.processor, feeder.processor.store
    decided_at = T0 + 100
    processor.clock = lambda: decided_at + HORIZON_MS - 1
    processor.tick({0})
    assert store.get(marker_key(KEY)) is not None
    processor.clock = lambda: decided_at + HORIZON_MS
    processor.tick({0})
    assert store.get(marker_key(KEY)) is None
    assert processor.stats.markers_expired == 1
    # Past the horizon the id is free: a candidate opens a new case.
    again = dataclasses.replace(candidate(), candidate_id="later")
    assert feeder.send(again) == []
    assert store.get(KEY) is not None


def test_forever_keeps_markers() -> None:
    processor, store, clock = make_processor()
    processor.settings = dataclasses.replace(SETTINGS, finished_horizon_ms=None)
    feeder = Feeder(processor)
    feeder.send(candidate())
    feeder.send_all([verdict("v1"), verdict("v2"), verdict("rt")])
    clock.now = T0 + 10 * HORIZON_MS
    processor.tick({0})
    assert store.get(KEY) is None
    assert store.get(marker_key(KEY)) is not None


def test_expiry_is_bounded_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processor_module, "MARKERS_EXPIRED_PER_TICK", 2)
    processor, store, clock = make_processor()
    feeder = Feeder(processor)
    for i in range(5):
        case = f"case-{i}"
        feeder.send(dataclasses.replace(candidate(), case_id=case))
        feeder.send_all([dataclasses.replace(verdict(v), case_id=case) for v in ("v1", "v2", "rt")])
    assert store.markers() == 5
    clock.now = T0 + HORIZON_MS + 1
    processor.tick({0})
    assert store.markers() == 3
    processor.tick({0})
    processor.tick({0})
    assert store.markers() == 0
