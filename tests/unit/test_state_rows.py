"""Candidates and verdicts in the tally's state: rows generated from the models (streams/rows.py).

The rows replaced hand-written positional code; the bytes of every state stay what they were
(pinned below, written by that code), and a field added to a model is stored with no edit to the
state codec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from ratifier.core.models import (
    Candidate,
    FailureReason,
    Reason,
    Severity,
    Span,
    Verdict,
    Vote,
)
from ratifier.streams.rules import rows
from ratifier.streams.rules.state import (
    AttemptState,
    CaseState,
    CaseStatus,
    HeldVerdict,
    SourceRef,
    decode_state,
    encode_state,
)

T0 = 1_700_000_000_000


def _state() -> CaseState:
    candidate = Candidate(
        "case-9", 1, "c1", "default", "qa", "2+2?", "4", "gen", T0, ("c0",), {"k": "v"}
    )
    accept = Verdict("case-9", 1, "c1", "a", "1.0", Vote.ACCEPT, 0.75, None, (), 12, T0 + 5)
    reasons = (Reason("x", "y", Span(0, 1)), Reason("z", "w"))
    reject = Verdict(
        "case-9", 1, "c1", "b", "1.0", Vote.REJECT, float("inf"), Severity.CRITICAL, reasons,
        13, T0 + 6,
    )  # fmt: skip
    held = HeldVerdict(
        Verdict("case-9", 2, "c2", "a", "1.0", Vote.ABSTAIN, 0.0, Severity.MINOR, (), 1, 2),
        SourceRef("t.verdicts", 3, 42),
        T0 + 9,
    )
    attempt = AttemptState(
        candidate,
        T0 + 1,
        T0 + 30_001,
        {"a": accept, "b": reject},
        T0 + 7,
        FailureReason.VETO,
        ("c",),
    )
    return CaseState(
        "case-9", CaseStatus.AWAITING_RETRY, "default", "1", (attempt,), (held,), T0 + 10
    )


# Written by the hand-written codec these rows replaced (commit 19bf925's streams/state.py).
PINNED = (
    b'[1,"case-9",2,"default","1",[[[1,"c1","default","qa","2+2?","4","gen",1700000000000,'
    b'["c0"],{"k":"v"}],1700000000001,1700000030001,1700000000007,2,["c"],[["a","1.0",0,0.75,'
    b'null,[],12,1700000000005],["b","1.0",1,"inf",2,[["x","y",0,1],["z","w"]],13,'
    b'1700000000006]]]],[[2,"c2",["a","1.0",2,0.0,0,[],1,2],"t.verdicts",3,42,1700000000009]],'
    b"1700000000010]"
)


def test_state_bytes_are_those_of_the_hand_written_codec() -> None:
    assert encode_state(_state()) == PINNED
    assert decode_state(PINNED) == _state()


def test_an_unsigned_verdict_row_has_the_released_eight_elements() -> None:
    row = rows.row(Verdict, implied=("case_id", "attempt", "candidate_id"), always=8)
    verdict = Verdict("c", 1, "x", "a", "1.0", Vote.ACCEPT, 0.5, None, (), 1, 2)
    assert row.encode(verdict) == ["a", "1.0", 0, 0.5, None, [], 1, 2]
    assert row.decode("c", 1, "x", ["a", "1.0", 0, 0.5, None, [], 1, 2]) == verdict


@dataclasses.dataclass(frozen=True, slots=True)
class _Grown:
    """A model as it would be after a release added two fields with defaults."""

    case_id: str
    name: str
    score: float
    tags: tuple[str, ...] = ()
    added: str = ""
    mood: Vote | None = None


def test_a_field_added_to_a_model_is_stored_without_an_edit() -> None:
    row = rows.row(_Grown, implied=("case_id",), always=3)  # released with name, score, tags
    plain = _Grown("c", "n", 1.5)
    assert row.encode(plain) == ["n", 1.5, []]  # the released bytes, as long as unused
    assert row.encode(dataclasses.replace(plain, mood=Vote.REJECT)) == ["n", 1.5, [], "", 1]
    assert row.encode(dataclasses.replace(plain, added="x")) == ["n", 1.5, [], "x"]
    for value in (plain, _Grown("c", "n", float("nan"), ("t",), "x", Vote.ABSTAIN)):
        decoded = row.decode("c", row.encode(value))
        assert repr(decoded) == repr(value)  # (NaN != NaN)
    assert row.decode("c", ["n", 1.5, []]) == plain  # a row written before the fields existed


def test_a_row_of_the_wrong_length_is_an_error() -> None:
    row = rows.row(_Grown, implied=("case_id",), always=3)
    with pytest.raises(ValueError, match="3 to 5 elements, not 2"):
        row.decode("c", ["n", 1.5])
    with pytest.raises(ValueError, match="not 6"):
        row.decode("c", ["n", 1.5, [], "", None, "extra"])


@dataclasses.dataclass(frozen=True, slots=True)
class _Unstorable:
    case_id: str
    table: Mapping[str, int]


def test_a_field_type_the_rows_cannot_store_fails_naming_it() -> None:
    with pytest.raises(TypeError, match="field table"):
        rows.row(_Unstorable, implied=("case_id",), always=1)
