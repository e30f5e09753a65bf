"""The case state codec: exact round trips, compact sizes, clear errors."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratifier.core.errors import WireFormatError
from ratifier.core.models import (
    Candidate,
    FailureReason,
    Reason,
    RoundRecord,
    Severity,
    Span,
    Verdict,
    Vote,
)
from ratifier.streams.rules import state as state_module
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
CASE = "0b6f3c1e-5d7a-4f7e-9a51-3c2d1e0f9a88"  # case ids are UUIDs in practice


def make_candidate(attempt: int = 1, content_chars: int = 300, **changes: Any) -> Candidate:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "attempt": attempt,
        "candidate_id": f"7c9e6679-7425-40de-944b-e07fc1f90ae{attempt}",
        "policy": "default",
        "category": "medical",
        "query": "What is the usual adult dose of paracetamol?",
        "content": ("Adults usually take 500 mg to 1 g every 4-6 hours. " * 8)[:content_chars],
        "producer": "generator-1",
        "produced_at_ms": T0,
    }
    fields.update(changes)
    return Candidate(**fields)


def make_verdict(
    validator_id: str, vote: Vote = Vote.ACCEPT, attempt: int = 1, **changes: Any
) -> Verdict:
    reasons: tuple[Reason, ...] = ()
    if vote is not Vote.ACCEPT:
        reasons = (Reason("DOSE", "states a dose without a weight limit", Span(10, 42)),)
    fields: dict[str, Any] = {
        "case_id": CASE,
        "attempt": attempt,
        "candidate_id": f"7c9e6679-7425-40de-944b-e07fc1f90ae{attempt}",
        "validator_id": validator_id,
        "validator_version": "1.4.2",
        "vote": vote,
        "confidence": 0.87,
        "severity": Severity.MAJOR if vote is Vote.REJECT else None,
        "reasons": reasons,
        "latency_ms": 143,
        "produced_at_ms": T0 + 143,
    }
    fields.update(changes)
    return Verdict(**fields)


def open_window(votes: list[Verdict], candidate: Candidate | None = None) -> CaseState:
    candidate = candidate or make_candidate()
    attempt = AttemptState(
        candidate=candidate,
        opened_at_ms=T0,
        deadline_ms=T0 + 30_000,
        votes={v.validator_id: v for v in votes},
    )
    return CaseState(CASE, CaseStatus.VOTING, "default", "2026-11-22.1", (attempt,))


FIVE_VOTES = [
    make_verdict("sim-a"),
    make_verdict("sim-b"),
    make_verdict("sim-c", Vote.REJECT),
    make_verdict("sim-d", Vote.ABSTAIN),
    make_verdict("redteam", Vote.REJECT, severity=Severity.CRITICAL),
]


def round_trips(state: CaseState) -> None:
    encoded = encode_state(state)
    assert decode_state(encoded) == state
    assert encode_state(decode_state(encoded)) == encoded


def test_open_window_round_trips() -> None:
    round_trips(open_window(FIVE_VOTES))
    round_trips(open_window([]))


def test_every_status_and_field_round_trips() -> None:
    first = AttemptState(
        candidate=make_candidate(1, metadata={"tenant": "acme", "lang": "en"}),
        opened_at_ms=T0,
        deadline_ms=T0 + 30_000,
        votes={v.validator_id: v for v in FIVE_VOTES},
        decided_at_ms=T0 + 500,
        failure=FailureReason.VETO,
        late=("v4", "v5"),
    )
    second = AttemptState(
        candidate=make_candidate(2, previous_candidate_ids=(first.candidate.candidate_id,)),
        opened_at_ms=T0 + 1_000,
        deadline_ms=T0 + 31_000,
        votes={"sim-a": make_verdict("sim-a", attempt=2)},
    )
    held = HeldVerdict(
        make_verdict("sim-b", attempt=3, candidate_id="not-yet-known"),
        SourceRef("ratifier.verdicts", 3, 987_654_321),
        T0 + 2_000,
    )
    for status in CaseStatus:
        round_trips(CaseState(CASE, status, "default", "v1", (first, second), (held,)))
    round_trips(CaseState(CASE, CaseStatus.PENDING, None, None, (), (held,)))
    round_trips(CaseState(CASE, CaseStatus.ESCALATED, "default", "v1", (first,), (), T0 + 9))


def test_closed_at_is_written_only_when_set() -> None:
    # States from before the field existed decode unchanged, and other states keep their bytes.
    state = open_window(FIVE_VOTES)
    assert len(orjson.loads(encode_state(state))) == 7
    closed = CaseState(CASE, CaseStatus.ESCALATED, "p", "v", state.attempts, (), T0 + 5)
    raw = orjson.loads(encode_state(closed))
    assert (len(raw), raw[-1]) == (8, T0 + 5)
    assert decode_state(orjson.dumps(raw[:7])).closed_at_ms is None


def test_non_finite_confidences_survive() -> None:
    for value in (math.inf, -math.inf):
        state = open_window([make_verdict("sim-a", confidence=value)])
        assert decode_state(encode_state(state)) == state
    state = open_window([make_verdict("sim-a", confidence=math.nan)])
    decoded = decode_state(encode_state(state)).attempts[0].votes["sim-a"]
    assert math.isnan(decoded.confidence)


def test_counted_verdicts_do_not_repeat_what_their_attempt_holds() -> None:
    encoded = encode_state(open_window(FIVE_VOTES)).decode()
    assert encoded.count(CASE) == 1
    assert encoded.count(make_candidate().candidate_id) == 1


def test_open_window_is_compact() -> None:
    size = len(encode_state(open_window(FIVE_VOTES)))
    # A 300-char candidate and five votes (three with a reason): well under 2 KB.
    assert size < 2048, size
    assert size < 1200, size  # today: 975 bytes; catch regressions early


def test_size_grows_only_by_the_vote() -> None:
    four = len(encode_state(open_window(FIVE_VOTES[:4])))
    five = len(encode_state(open_window(FIVE_VOTES)))
    assert five - four < 120


def test_enum_code_tables_cover_every_member() -> None:
    # A member added to models.py without a code here would fail to encode.
    assert set(state_module._VOTES) == set(Vote)
    assert set(state_module._SEVERITIES) == set(Severity)
    assert set(state_module._FAILURES) == set(FailureReason)
    assert set(state_module._STATUSES) == set(CaseStatus)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"{}", id="object"),
        pytest.param(b"[]", id="empty"),
        pytest.param(orjson.dumps([99, CASE, 0, None, None, [], []]), id="future-version"),
        pytest.param(orjson.dumps([1, CASE, 0, None]), id="too-short"),
        pytest.param(orjson.dumps([1, CASE, 42, None, None, [], []]), id="bad-status"),
        pytest.param(orjson.dumps([1, CASE, 1, "p", "v", [[1, 2]], []]), id="bad-attempt"),
        pytest.param(orjson.dumps([1, CASE, 0, None, None, [], [], 5, 6]), id="too-long"),
        pytest.param(
            orjson.dumps(
                [1, CASE, 1, "p", "v", [[["x"], 1, 2, None, None, [], [], [], [], []]], []]
            ),
            id="attempt-too-long",
        ),
    ],
)
def test_bad_bytes_raise_wire_format_error(data: bytes) -> None:
    with pytest.raises(WireFormatError):
        decode_state(data)


# --- property: any contents round-trip ---------------------------------------------------------

TEXT = st.text(max_size=40)
MILLIS = st.integers(min_value=0, max_value=2**63 - 1)
REASONS = st.builds(
    Reason,
    code=TEXT,
    message=TEXT,
    span=st.none() | st.builds(Span, st.integers(0, 10_000), st.integers(0, 10_000)),
)


@st.composite
def verdicts(draw: st.DrawFn, candidate: Candidate, validator_id: str) -> Verdict:
    return Verdict(
        case_id=candidate.case_id,
        attempt=candidate.attempt,
        candidate_id=candidate.candidate_id,
        validator_id=validator_id,
        validator_version=draw(TEXT),
        vote=draw(st.sampled_from(Vote)),
        confidence=draw(st.floats(allow_nan=False)),
        severity=draw(st.none() | st.sampled_from(Severity)),
        reasons=tuple(draw(st.lists(REASONS, max_size=3))),
        latency_ms=draw(MILLIS),
        produced_at_ms=draw(MILLIS),
        round=draw(st.none() | st.integers(1, 10)),
    )


@st.composite
def case_states(draw: st.DrawFn) -> CaseState:
    case_id = draw(TEXT)
    attempts: list[AttemptState] = []
    for number in range(1, draw(st.integers(0, 3)) + 1):
        candidate = Candidate(
            case_id=case_id,
            attempt=number,
            candidate_id=draw(TEXT),
            policy=draw(TEXT),
            category=draw(TEXT),
            query=draw(st.text(max_size=200)),
            content=draw(st.text(max_size=400)),
            producer=draw(TEXT),
            produced_at_ms=draw(MILLIS),
            previous_candidate_ids=tuple(draw(st.lists(TEXT, max_size=3))),
            metadata=draw(st.dictionaries(TEXT, TEXT, max_size=3)),
        )
        voters = draw(st.lists(TEXT, max_size=5, unique=True))
        decided = draw(st.none() | MILLIS)
        attempts.append(
            AttemptState(
                candidate=candidate,
                opened_at_ms=draw(MILLIS),
                deadline_ms=draw(MILLIS),
                votes={v: draw(verdicts(candidate, v)) for v in voters},
                decided_at_ms=decided,
                failure=None
                if decided is None
                else draw(st.none() | st.sampled_from(FailureReason)),
                late=tuple(draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True))),
                late_verdicts=tuple(
                    draw(verdicts(candidate, v)) for v in draw(st.lists(TEXT, max_size=2))
                ),
                rounds=tuple(
                    RoundRecord(
                        k,
                        tuple(draw(verdicts(candidate, v)) for v in voters),
                        draw(MILLIS),
                    )
                    for k in range(1, draw(st.integers(0, 3)) + 1)
                ),
            )
        )
    held = []
    for _ in range(draw(st.integers(0, 3))):
        attempt = draw(st.integers(-5, 10))
        target = Candidate(case_id, attempt, draw(TEXT), "", "", "", "", "", 0)
        held.append(
            HeldVerdict(
                draw(verdicts(target, draw(TEXT))),
                SourceRef(draw(TEXT), draw(st.integers(0, 10_000)), draw(MILLIS)),
                draw(MILLIS),
            )
        )
    status = draw(st.sampled_from(CaseStatus))
    policy = draw(st.none() | TEXT)
    return CaseState(
        case_id,
        status,
        policy,
        draw(st.none() | TEXT),
        tuple(attempts),
        tuple(held),
        draw(st.none() | MILLIS),
    )


@settings(max_examples=200, deadline=None)
@given(case_states())
def test_any_state_round_trips(state: CaseState) -> None:
    round_trips(state)
