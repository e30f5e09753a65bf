"""Earlier attempts by reference (``earlier_attempts = "referenced"``): stubs in the state and the
packet, each naming its retry request, and long retry chains of the largest records that fit."""

from __future__ import annotations

from typing import Any

import pytest

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.models import (
    Candidate,
    Decision,
    EscalationPacket,
    Reason,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy
from ratifier.schemas import codec
from ratifier.streams.rules.limits import MAX_VERDICT_BYTES, SizeLimits
from ratifier.streams.rules.state import CaseState, encode_state
from ratifier.streams.rules.tally import (
    SourceRef,
    TallySettings,
    decision_id,
    on_candidate,
    on_verdict,
)

T0 = 1_700_000_000_000
SETTINGS = TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=120_000)
LIMITS = SizeLimits.from_settings(Settings())  # 200 000 B candidates, 1 048 576 B records


def policy(validators: int, attempts: int, earlier: str) -> Policy:
    data: dict[str, Any] = {
        "name": "p",
        "version": "1",
        "max_attempts": attempts,
        "earlier_attempts": earlier,
        "threshold": {"accepts": validators},
        "validators": [{"id": f"v{i:02d}"} for i in range(validators)],
    }
    return Policy.from_mapping(data, "test")


def candidate(attempt: int, content_bytes: int) -> Candidate:
    return Candidate(
        "case-1", attempt, f"case-1-{attempt}", "p", "general", "q" * 200, "x" * content_bytes,
        "gen", T0, tuple(f"case-1-{n}" for n in range(1, attempt)), {"k": "v" * 100},
    )  # fmt: skip


def rejection(cand: Candidate, validator: str, reason_bytes: int) -> Verdict:
    reasons = tuple(Reason(f"r{i}", "m" * (reason_bytes // 4)) for i in range(4))
    return Verdict(cand.case_id, cand.attempt, cand.candidate_id, validator, "1.0", Vote.REJECT,
                   0.9, None, reasons, 5, T0)  # fmt: skip


def run_chain(
    rules: Policy, content_bytes: int, reason_bytes: int
) -> tuple[CaseState, list[Decision]]:
    """Every attempt rejected by every validator: retries, then the escalation."""
    state: CaseState | None = None
    decisions: list[Decision] = []
    offset = 0
    for attempt in range(1, rules.max_attempts + 1):
        cand = candidate(attempt, content_bytes)
        step = on_candidate(state, cand, rules, T0, SETTINGS)
        state = step.state
        for spec in rules.validators:
            offset += 1
            verdict = rejection(cand, spec.id, reason_bytes)
            source = SourceRef("v", 0, offset)
            step = on_verdict(state, verdict, source, {"p": rules}, T0, SETTINGS)
            state = step.state
            decisions += step.decisions
    assert state is not None
    return state, decisions


def test_earlier_attempts_become_stubs_that_name_their_retry_requests() -> None:
    rules = policy(3, 3, "referenced")
    state, decisions = run_chain(rules, 1_000, 400)
    *retries, packet = decisions
    assert all(isinstance(r, RetryRequest) for r in retries)
    assert isinstance(packet, EscalationPacket)
    # The retry requests carry their attempt in full: what the references resolve to.
    for retry in retries:
        assert isinstance(retry, RetryRequest)
        assert len(retry.candidate.content) == 1_000
        assert all(v.reasons for v in retry.votes)
    first, second, last = packet.attempts
    for record, retry in zip((first, second), retries, strict=True):
        assert (
            record.retry_decision_id
            == retry.decision_id
            == decision_id("case-1", record.candidate.attempt)
        )
        assert (record.candidate.content, record.candidate.query) == ("", "")
        assert record.candidate.candidate_id == retry.candidate.candidate_id
        assert [(v.validator_id, v.vote, v.reasons) for v in record.verdicts] == [
            (v.validator_id, v.vote, ()) for v in retry.votes
        ]
    assert last.retry_decision_id is None
    assert len(last.candidate.content) == 1_000
    assert all(v.reasons for v in last.verdicts)
    # The state keeps the stubs too.
    assert [len(a.candidate.content) for a in state.attempts] == [0, 0, 1_000]


def test_full_packets_keep_every_attempt_and_still_name_the_retry_requests() -> None:
    _, decisions = run_chain(policy(3, 2, "full"), 1_000, 400)
    packet = decisions[-1]
    assert isinstance(packet, EscalationPacket)
    first, last = packet.attempts
    assert len(first.candidate.content) == 1_000
    assert first.retry_decision_id == decisions[0].decision_id
    assert last.retry_decision_id is None


@pytest.mark.parametrize(
    ("validators", "attempts"), [(5, 4), (10, 5)], ids=["5-validators-4-rounds", "10x5-chain"]
)
def test_the_largest_chains_fit_a_record_only_by_reference(validators: int, attempts: int) -> None:
    full, referenced = (
        policy(validators, attempts, "full"),
        policy(validators, attempts, "referenced"),
    )
    with pytest.raises(ConfigError, match='earlier_attempts = "referenced"'):
        LIMITS.check_policy(full)
    LIMITS.check_policy(referenced)
    bound = LIMITS.worst_case_bytes(referenced)
    assert bound <= LIMITS.max_record_bytes
    # Records as large as the tally admits: candidates and verdicts just under their limits.
    content = LIMITS.max_candidate_bytes - 1_000
    reason = MAX_VERDICT_BYTES - 600
    assert len(codec.encode(candidate(attempts, content))) <= LIMITS.max_candidate_bytes
    assert len(codec.encode(rejection(candidate(1, 0), "v00", reason))) <= MAX_VERDICT_BYTES
    state, decisions = run_chain(referenced, content, reason)
    packet = decisions[-1]
    assert isinstance(packet, EscalationPacket)
    assert len(packet.attempts) == attempts
    assert len(encode_state(state)) <= bound
    assert len(codec.encode(packet)) <= bound
    # Carried in full, the same chain would not fit.
    _, full_decisions = run_chain(full, content, reason)
    assert len(codec.encode(full_decisions[-1])) > LIMITS.max_record_bytes
