"""Earlier attempts carried by reference (policy ``earlier_attempts = "referenced"``): stubs.

Once attempt N + 1 opens, attempt N's candidate and verdicts are already published in full in
its retry request, so the case state and the escalation packet keep only what the rules and a
reviewer's summary need: ids, votes, confidences, severities, failure. What a stub drops is
the bulk (content, query, metadata, reasons) and the signature (which no longer matches the
stub). Bounded sizes for :mod:`.limits` assume ids of ordinary length; a record
that would still outgrow the limit is dead-lettered ``TOO_LARGE`` as before.
"""

from __future__ import annotations

from dataclasses import replace

from ratifier.core.models import Candidate, RoundRecord, Verdict
from ratifier.streams.rules.state import AttemptState

__all__ = ["STUB_CANDIDATE_BYTES", "STUB_VERDICT_BYTES", "stub_attempt", "stub_verdict"]

# What a stub may take in a state or packet, ids included (a 36-character uuid is 37 bytes).
STUB_CANDIDATE_BYTES = 2 * 1024
STUB_VERDICT_BYTES = 1024


def stub_verdict(verdict: Verdict) -> Verdict:
    if not verdict.reasons and not verdict.signature:
        return verdict
    return replace(verdict, reasons=(), signature=b"", key_id="")


def _stub_candidate(candidate: Candidate) -> Candidate:
    return replace(candidate, query="", content="", metadata={}, previous_candidate_ids=())


def stub_attempt(attempt: AttemptState) -> AttemptState:
    """``attempt`` (decided) with a stub candidate and stub verdicts: counted, late and of its
    debate rounds."""
    return AttemptState(
        _stub_candidate(attempt.candidate),
        attempt.opened_at_ms,
        attempt.deadline_ms,
        {validator: stub_verdict(v) for validator, v in attempt.votes.items()},
        attempt.decided_at_ms,
        attempt.failure,
        attempt.late,
        tuple(stub_verdict(v) for v in attempt.late_verdicts),
        tuple(_stub_round(r) for r in attempt.rounds),
    )


def _stub_round(record: RoundRecord) -> RoundRecord:
    return RoundRecord(record.round, tuple(map(stub_verdict, record.verdicts)), record.closed_at_ms)
