"""The tally processor's poison brake: it counts only input the tally cannot read, and a trip
leaves the batch in hand to the engine (which commits nothing more)."""

from __future__ import annotations

import pytest

from ratifier.core.models import Verdict
from ratifier.io.consume import PoisonGate, PoisonHandling, PoisonLimitExceeded
from ratifier.schemas import codec
from ratifier.streams.processor import InputRecord, TallyProcessor
from ratifier.streams.store import DictCaseStore
from tests.unit.test_tally_processor import (
    LIMITS,
    SETTINGS,
    TOPICS,
    Clock,
    candidate,
    make_policy,
    verdict,
)


def braked(max_consecutive: int) -> TallyProcessor:
    handling = PoisonHandling(max_consecutive=max_consecutive, max_ratio=None)
    return TallyProcessor(
        TOPICS,
        {"p": make_policy()},
        DictCaseStore(),
        SETTINGS,
        clock=Clock(),
        limits=LIMITS,
        gate=PoisonGate(handling),
    )


def garbage(offset: int) -> InputRecord:
    return InputRecord(TOPICS.candidates, 0, offset, b"junk", b"\x00garbage")


def stranger(offset: int) -> InputRecord:
    """A readable verdict from a validator the policy does not list: a rule's rejection."""
    value: Verdict = verdict("nobody-listed")
    return InputRecord(TOPICS.verdicts, 0, offset, value.case_id.encode(), codec.encode(value))


def test_a_run_of_unreadable_records_past_the_limit_trips_it() -> None:
    processor = braked(max_consecutive=3)
    processor.handle_batch([garbage(n) for n in range(3)])  # at the limit: dead-lettered
    with pytest.raises(PoisonLimitExceeded, match="4 invalid records in a row"):
        processor.handle_batch([garbage(3)])


def test_a_readable_record_resets_the_run() -> None:
    processor = braked(max_consecutive=3)
    good = candidate()
    first = InputRecord(TOPICS.candidates, 0, 3, good.case_id.encode(), codec.encode(good))
    out = processor.handle_batch([garbage(0), garbage(1), garbage(2), first, garbage(4)])
    assert len([o for o in out if o.topic == TOPICS.deadletter]) == 4


def test_rule_rejections_never_trip_it() -> None:
    processor = braked(max_consecutive=1)
    good = candidate()
    opening = InputRecord(TOPICS.candidates, 0, 0, good.case_id.encode(), codec.encode(good))
    out = processor.handle_batch([opening, *(stranger(n) for n in range(1, 20))])
    assert len([o for o in out if o.topic == TOPICS.deadletter]) == 19
    assert processor.gate is not None
    assert processor.gate.invalid == 0
