"""Model <-> Avro datum conversion, written out per type: the one place that knows both shapes.

Every Kafka message passes through here, so each record type has a hand-written pair of
functions rather than a generic walk over ``dataclasses.fields``: no reflection, no per-field
dispatch. The datums are what fastavro reads and writes for the schemas in ``schemas/*.avsc``:

* arrays are written from the models' tuples as they are; they read back as lists, made tuples;
* enums are their symbols; ``StrEnum`` members are ``str``, so they are written unconverted and
  read back through a symbol -> member dict (cheaper than calling the enum class);
* a union's non-null value is written in fastavro's tuple notation, ``(type name, value)``:
  naming the branch spares fastavro trying each one (about 1.7 us per ``Span``);
* ``*_ms`` timestamps stay plain ``int``: the codec reads and writes with a copy of the schemas
  without the ``timestamp-millis`` logical type (same bytes, same fingerprint), so fastavro never
  builds a ``datetime`` only for us to turn it back.

A new field in a model needs a line in both functions of its type; the round-trip tests fail until
it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    DeadLetter,
    DeadLetterReason,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    Outcome,
    OutcomeClass,
    PassDecision,
    Reason,
    RetryRequest,
    Severity,
    Span,
    Verdict,
    Vote,
)

Datum = dict[str, Any]

_SPAN: Final = "ratifier.Span"
_SEVERITY_TYPE: Final = "ratifier.Severity"

# Symbol -> member. Decoded symbols always belong to the writer schema's enum, and the schemas
# list exactly the models' values (a test checks), so a plain lookup is enough.
_VOTE = {m.value: m for m in Vote}
_SEVERITY = {m.value: m for m in Severity}
_FAILURE = {m.value: m for m in FailureReason}
_OUTCOME = {m.value: m for m in OutcomeClass}
_ESCALATION = {m.value: m for m in EscalationReason}
_DEAD_LETTER = {m.value: m for m in DeadLetterReason}


def _plain_map(value: Mapping[str, str]) -> Mapping[str, str]:
    # fastavro writes any mapping, but the type check costs nothing for the usual dict.
    return value if type(value) is dict else dict(value)


# --- Reason / Span ---------------------------------------------------------------------------


def reason_to_avro(reason: Reason) -> Datum:
    span = reason.span
    return {
        "code": reason.code,
        "message": reason.message,
        "span": None if span is None else (_SPAN, {"start": span.start, "end": span.end}),
    }


def reason_from_avro(d: Datum) -> Reason:
    span = d["span"]
    return Reason(
        code=d["code"],
        message=d["message"],
        span=None if span is None else Span(start=span["start"], end=span["end"]),
    )


# --- Candidate -------------------------------------------------------------------------------


def candidate_to_avro(c: Candidate) -> Datum:
    return {
        "case_id": c.case_id,
        "attempt": c.attempt,
        "candidate_id": c.candidate_id,
        "policy": c.policy,
        "category": c.category,
        "query": c.query,
        "content": c.content,
        "producer": c.producer,
        "produced_at_ms": c.produced_at_ms,
        "previous_candidate_ids": c.previous_candidate_ids,
        "metadata": _plain_map(c.metadata),
    }


def candidate_from_avro(d: Datum) -> Candidate:
    return Candidate(
        case_id=d["case_id"],
        attempt=d["attempt"],
        candidate_id=d["candidate_id"],
        policy=d["policy"],
        category=d["category"],
        query=d["query"],
        content=d["content"],
        producer=d["producer"],
        produced_at_ms=d["produced_at_ms"],
        previous_candidate_ids=tuple(d["previous_candidate_ids"]),
        metadata=d["metadata"],
    )


# --- Verdict ---------------------------------------------------------------------------------


def verdict_to_avro(v: Verdict) -> Datum:
    return {
        "case_id": v.case_id,
        "attempt": v.attempt,
        "candidate_id": v.candidate_id,
        "validator_id": v.validator_id,
        "validator_version": v.validator_version,
        "vote": v.vote,
        "confidence": v.confidence,
        "severity": None if v.severity is None else (_SEVERITY_TYPE, v.severity),
        "reasons": [reason_to_avro(r) for r in v.reasons],
        "latency_ms": v.latency_ms,
        "produced_at_ms": v.produced_at_ms,
    }


def verdict_from_avro(d: Datum) -> Verdict:
    severity = d["severity"]
    return Verdict(
        case_id=d["case_id"],
        attempt=d["attempt"],
        candidate_id=d["candidate_id"],
        validator_id=d["validator_id"],
        validator_version=d["validator_version"],
        vote=_VOTE[d["vote"]],
        confidence=d["confidence"],
        severity=None if severity is None else _SEVERITY[severity],
        reasons=tuple([reason_from_avro(r) for r in d["reasons"]]),
        latency_ms=d["latency_ms"],
        produced_at_ms=d["produced_at_ms"],
    )


# --- Decisions -------------------------------------------------------------------------------


def pass_decision_to_avro(p: PassDecision) -> Datum:
    return {
        "decision_id": p.decision_id,
        "case_id": p.case_id,
        "attempt": p.attempt,
        "candidate": candidate_to_avro(p.candidate),
        "confidence": p.confidence,
        "votes": [verdict_to_avro(v) for v in p.votes],
        "policy": p.policy,
        "policy_version": p.policy_version,
        "outcome": p.outcome,
        "decided_at_ms": p.decided_at_ms,
        "accept_share": p.accept_share,
    }


def pass_decision_from_avro(d: Datum) -> PassDecision:
    return PassDecision(
        decision_id=d["decision_id"],
        case_id=d["case_id"],
        attempt=d["attempt"],
        candidate=candidate_from_avro(d["candidate"]),
        confidence=d["confidence"],
        votes=tuple([verdict_from_avro(v) for v in d["votes"]]),
        policy=d["policy"],
        policy_version=d["policy_version"],
        outcome=_OUTCOME[d["outcome"]],
        decided_at_ms=d["decided_at_ms"],
        accept_share=d["accept_share"],
    )


def retry_request_to_avro(r: RetryRequest) -> Datum:
    return {
        "decision_id": r.decision_id,
        "case_id": r.case_id,
        "attempt": r.attempt,
        "next_attempt": r.next_attempt,
        "candidate": candidate_to_avro(r.candidate),
        "reason": r.reason,
        "dissent": [verdict_to_avro(v) for v in r.dissent],
        "missing_validators": r.missing_validators,
        "votes": [verdict_to_avro(v) for v in r.votes],
        "policy": r.policy,
        "policy_version": r.policy_version,
        "decided_at_ms": r.decided_at_ms,
    }


def retry_request_from_avro(d: Datum) -> RetryRequest:
    return RetryRequest(
        decision_id=d["decision_id"],
        case_id=d["case_id"],
        attempt=d["attempt"],
        next_attempt=d["next_attempt"],
        candidate=candidate_from_avro(d["candidate"]),
        reason=_FAILURE[d["reason"]],
        dissent=tuple([verdict_from_avro(v) for v in d["dissent"]]),
        missing_validators=tuple(d["missing_validators"]),
        votes=tuple([verdict_from_avro(v) for v in d["votes"]]),
        policy=d["policy"],
        policy_version=d["policy_version"],
        decided_at_ms=d["decided_at_ms"],
    )


def attempt_record_to_avro(a: AttemptRecord) -> Datum:
    return {
        "candidate": candidate_to_avro(a.candidate),
        "verdicts": [verdict_to_avro(v) for v in a.verdicts],
        "failure": a.failure,
        "late_verdicts": [verdict_to_avro(v) for v in a.late_verdicts],
    }


def attempt_record_from_avro(d: Datum) -> AttemptRecord:
    return AttemptRecord(
        candidate=candidate_from_avro(d["candidate"]),
        verdicts=tuple([verdict_from_avro(v) for v in d["verdicts"]]),
        failure=_FAILURE[d["failure"]],
        late_verdicts=tuple([verdict_from_avro(v) for v in d["late_verdicts"]]),
    )


def escalation_packet_to_avro(e: EscalationPacket) -> Datum:
    return {
        "decision_id": e.decision_id,
        "case_id": e.case_id,
        "attempts": [attempt_record_to_avro(a) for a in e.attempts],
        "reason": e.reason,
        "policy": e.policy,
        "policy_version": e.policy_version,
        "outcome": e.outcome,
        "decided_at_ms": e.decided_at_ms,
    }


def escalation_packet_from_avro(d: Datum) -> EscalationPacket:
    return EscalationPacket(
        decision_id=d["decision_id"],
        case_id=d["case_id"],
        attempts=tuple([attempt_record_from_avro(a) for a in d["attempts"]]),
        reason=_ESCALATION[d["reason"]],
        policy=d["policy"],
        policy_version=d["policy_version"],
        outcome=_OUTCOME[d["outcome"]],
        decided_at_ms=d["decided_at_ms"],
    )


# --- DeadLetter ------------------------------------------------------------------------------


def dead_letter_to_avro(x: DeadLetter) -> Datum:
    return {
        "original": x.original,
        "source_topic": x.source_topic,
        "partition": x.partition,
        "offset": x.offset,
        "reason": x.reason,
        "detail": x.detail,
        "dead_at_ms": x.dead_at_ms,
    }


def dead_letter_from_avro(d: Datum) -> DeadLetter:
    return DeadLetter(
        original=d["original"],
        source_topic=d["source_topic"],
        partition=d["partition"],
        offset=d["offset"],
        reason=_DEAD_LETTER[d["reason"]],
        detail=d["detail"],
        dead_at_ms=d["dead_at_ms"],
    )


# --- Outcome ---------------------------------------------------------------------------------


def _optional(type_name: str, value: Any) -> Any:
    return None if value is None else (type_name, value)


def outcome_to_avro(o: Outcome) -> Datum:
    return {
        "outcome_id": o.outcome_id,
        "case_id": o.case_id,
        "kind": o.kind,
        "reviewer": o.reviewer,
        "decided_at_ms": o.decided_at_ms,
        "attempt": _optional("int", o.attempt),
        "candidate_id": _optional("string", o.candidate_id),
        "content": _optional("string", o.content),
        "query": o.query,
        "category": o.category,
        "note": _optional("string", o.note),
        "policy": o.policy,
        "policy_version": o.policy_version,
        "resolves": o.resolves,
    }


def outcome_from_avro(d: Datum) -> Outcome:
    return Outcome(
        outcome_id=d["outcome_id"],
        case_id=d["case_id"],
        kind=_OUTCOME[d["kind"]],
        reviewer=d["reviewer"],
        decided_at_ms=d["decided_at_ms"],
        attempt=d["attempt"],
        candidate_id=d["candidate_id"],
        content=d["content"],
        query=d["query"],
        category=d["category"],
        note=d["note"],
        policy=d["policy"],
        policy_version=d["policy_version"],
        resolves=tuple(d["resolves"]),
    )


# The top-level records (one per topic), in the order topics are listed.
TO_AVRO: dict[type, Callable[[Any], Datum]] = {
    Candidate: candidate_to_avro,
    Verdict: verdict_to_avro,
    PassDecision: pass_decision_to_avro,
    RetryRequest: retry_request_to_avro,
    EscalationPacket: escalation_packet_to_avro,
    DeadLetter: dead_letter_to_avro,
    Outcome: outcome_to_avro,
}
FROM_AVRO: dict[type, Callable[[Datum], Any]] = {
    Candidate: candidate_from_avro,
    Verdict: verdict_from_avro,
    PassDecision: pass_decision_from_avro,
    RetryRequest: retry_request_from_avro,
    EscalationPacket: escalation_packet_from_avro,
    DeadLetter: dead_letter_from_avro,
    Outcome: outcome_from_avro,
}
