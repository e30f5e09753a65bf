"""The chaos checker on synthetic outputs: a clean run passes, and each violation is caught."""

from __future__ import annotations

import dataclasses

from ratifier.app.chaos.checker import (
    BAD_INPUT_WRONG,
    CONFLICTING,
    DOUBLE_VOTES,
    DUPLICATE_IDS,
    GOOD_DEAD_LETTERED,
    MISSING_FINAL,
    MISSING_OUTCOME,
    MULTIPLE_FINALS,
    MULTIPLE_OUTCOMES,
    RULES,
    TWO_CONTENTS,
    UNDECIDED,
    UNREADABLE,
    CheckResult,
    InjectedRecord,
    Outputs,
    SourceRef,
    check,
)
from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    DeadLetter,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    FinalOutcomeRef,
    OutcomeClass,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.features.outcomes.core import outcome_from_pass
from ratifier.schemas import codec
from ratifier.streams.rules.tally import decision_id

VERDICTS = "t.verdicts"
CANDIDATES = "t.candidates"


def candidate(case: str, attempt: int = 1) -> Candidate:
    return Candidate(case, attempt, f"{case}-c{attempt}", "default", "g", "q", "x", "p", 1)


def verdict(case: str, validator: str, attempt: int = 1) -> Verdict:
    return Verdict(
        case, attempt, f"{case}-c{attempt}", validator, "1", Vote.ACCEPT, 1.0, None, (), 1, 1
    )


def passed(case: str, attempt: int = 1, voters: tuple[str, ...] = ("a", "b")) -> PassDecision:
    return PassDecision(
        decision_id(case, attempt),
        case,
        attempt,
        candidate(case, attempt),
        1.0,
        tuple(verdict(case, v, attempt) for v in voters),
        "default",
        "1",
        OutcomeClass.CONFIRMED,
        1,
    )


def retried(case: str, attempt: int = 1) -> RetryRequest:
    return RetryRequest(
        decision_id(case, attempt),
        case,
        attempt,
        attempt + 1,
        candidate(case, attempt),
        FailureReason.VETO,
        (),
        (),
        (verdict(case, "a", attempt),),
        "default",
        "1",
        1,
    )


def escalated(case: str, attempts: int = 2) -> EscalationPacket:
    records = tuple(
        AttemptRecord(candidate(case, n), (verdict(case, "a", n),), FailureReason.VETO)
        for n in range(1, attempts + 1)
    )
    return EscalationPacket(
        decision_id(case, attempts),
        case,
        records,
        EscalationReason.MAX_ATTEMPTS_EXHAUSTED,
        "default",
        "1",
        OutcomeClass.UNRESOLVED,
        1,
    )


def letter(at: SourceRef, reason: DeadLetterReason, original: bytes = b"?") -> DeadLetter:
    return DeadLetter(original, at.topic, at.partition, at.offset, reason, "why", 1)


GARBAGE = InjectedRecord("garbage-verdict", SourceRef(VERDICTS, 0, 10), "MALFORMED")
DUPLICATE = InjectedRecord("duplicate-verdict", SourceRef(VERDICTS, 1, 20), None)


def clean_run() -> tuple[list[str], Outputs, list[InjectedRecord]]:
    """Case 1 passes at once; case 2 is retried and then passes; case 3 escalates."""
    decisions: list[Decision] = [
        passed("c1"),
        retried("c2"),
        passed("c2", 2),
        retried("c3"),
        escalated("c3"),
    ]
    candidates = [candidate("c1"), candidate("c2"), candidate("c2", 2)]
    candidates += [candidate("c3"), candidate("c3", 2)]
    letters = [letter(GARBAGE.source, DeadLetterReason.MALFORMED)]
    return ["c1", "c2", "c3"], Outputs(candidates, decisions, letters), [GARBAGE, DUPLICATE]


def counts(result: CheckResult) -> dict[str, int]:
    return {rule.name: rule.violations for rule in result.rules if rule.violations}


def test_a_clean_run_passes_every_rule() -> None:
    cases, outputs, injected = clean_run()
    result = check(cases, outputs, injected)
    assert result.ok, result.failures()
    assert [rule.name for rule in result.rules] == list(RULES)
    assert (result.cases, result.final_outcomes) == (3, 3)
    assert (result.bad_injected, result.bad_right, result.bad_wrong) == (2, 2, 0)


def test_a_case_without_a_final_outcome_is_missing() -> None:
    cases, outputs, injected = clean_run()
    result = check([*cases, "c4"], outputs, injected)
    assert counts(result) == {MISSING_FINAL: 1}
    assert "c4" in result.rules[0].examples[0]
    assert result.final_outcomes == 3


def test_a_pass_and_an_escalation_for_one_case_are_multiple_finals() -> None:
    cases, outputs, injected = clean_run()
    outputs.decisions.append(escalated("c1", attempts=3))
    outputs.candidates.extend([candidate("c1", 2), candidate("c1", 3)])
    # The escalation decides attempt 3; attempt 2 has a candidate and no decision.
    assert counts(check(cases, outputs, injected)) == {MULTIPLE_FINALS: 1, UNDECIDED: 1}


def test_two_kinds_of_decision_for_one_attempt_conflict() -> None:
    cases, outputs, injected = clean_run()
    outputs.decisions.append(retried("c1"))  # c1 attempt 1 passed; now also retried
    result = check(cases, outputs, injected)
    # The same (case, attempt) id written twice is also a duplicate decision id, with two
    # contents.
    assert counts(result) == {CONFLICTING: 1, DUPLICATE_IDS: 1, TWO_CONTENTS: 1}
    assert "c1 attempt 1" in next(r for r in result.rules if r.name == CONFLICTING).examples[0]


def test_a_candidate_without_a_decision_is_undecided() -> None:
    cases, outputs, injected = clean_run()
    outputs.candidates.append(candidate("c1", 2))
    assert counts(check(cases, outputs, injected)) == {UNDECIDED: 1}


def test_the_same_decision_written_twice_is_a_duplicate_id() -> None:
    cases, outputs, injected = clean_run()
    outputs.decisions.append(passed("c1"))
    result = check(cases, outputs, injected)
    assert counts(result) == {DUPLICATE_IDS: 1}
    assert result.ok is False


def test_a_vote_counted_twice_is_caught_in_passes_and_escalations() -> None:
    cases, outputs, injected = clean_run()
    outputs.decisions[0] = passed("c1", voters=("a", "b", "a"))
    packet = escalated("c3")
    doubled = dataclasses.replace(
        packet.attempts[0], verdicts=(verdict("c3", "a"), verdict("c3", "a"))
    )
    outputs.decisions[4] = dataclasses.replace(packet, attempts=(doubled, packet.attempts[1]))
    assert counts(check(cases, outputs, injected)) == {DOUBLE_VOTES: 2}


def test_bad_input_must_be_dead_lettered_exactly_once_with_its_reason() -> None:
    cases, outputs, _ = clean_run()
    missing = InjectedRecord("orphan-verdict", SourceRef(VERDICTS, 2, 1), "UNKNOWN_ATTEMPT")
    wrong_reason = InjectedRecord("garbage-candidate", SourceRef(CANDIDATES, 0, 5), "MALFORMED")
    twice = InjectedRecord("unknown-validator", SourceRef(VERDICTS, 3, 7), "UNKNOWN_VALIDATOR")
    outputs.dead_letters.append(letter(wrong_reason.source, DeadLetterReason.PROCESSING_ERROR))
    outputs.dead_letters.extend([letter(twice.source, DeadLetterReason.UNKNOWN_VALIDATOR)] * 2)
    result = check(cases, outputs, [GARBAGE, missing, wrong_reason, twice])
    assert counts(result) == {BAD_INPUT_WRONG: 3}
    assert (result.bad_injected, result.bad_right, result.bad_wrong) == (4, 1, 3)
    examples = next(r for r in result.rules if r.name == BAD_INPUT_WRONG).examples
    assert any("expected UNKNOWN_ATTEMPT, got no dead letter" in e for e in examples)
    assert any("expected MALFORMED, got PROCESSING_ERROR" in e for e in examples)
    assert any("got UNKNOWN_VALIDATOR, UNKNOWN_VALIDATOR" in e for e in examples)


def test_a_reason_no_tally_knows_yet_fails_that_record() -> None:
    cases, outputs, _ = clean_run()
    oversized = InjectedRecord("oversized-candidate", SourceRef(CANDIDATES, 1, 3), "TOO_LARGE")
    result = check(cases, outputs, [GARBAGE, oversized])
    assert counts(result) == {BAD_INPUT_WRONG: 1}


def test_a_re_sent_or_late_verdict_must_not_be_dead_lettered() -> None:
    cases, outputs, injected = clean_run()
    outputs.dead_letters.append(letter(DUPLICATE.source, DeadLetterReason.UNKNOWN_ATTEMPT))
    result = check(cases, outputs, injected)
    assert counts(result) == {BAD_INPUT_WRONG: 1}
    assert "expected no dead letter" in result.rules[RULES.index(BAD_INPUT_WRONG)].examples[0]


def test_a_good_record_dead_lettered_is_caught() -> None:
    cases, outputs, injected = clean_run()
    good = SourceRef(VERDICTS, 0, 11)  # next to the garbage, but no injected record
    outputs.dead_letters.append(letter(good, DeadLetterReason.WRONG_CANDIDATE))
    result = check(cases, outputs, injected)
    assert counts(result) == {GOOD_DEAD_LETTERED: 1}
    assert str(good) in result.rules[RULES.index(GOOD_DEAD_LETTERED)].examples[0]


def test_verdicts_for_an_injected_bad_candidate_may_be_dead_lettered() -> None:
    cases, outputs, injected = clean_run()
    follow_on = codec.encode(verdict("oversized", "a"))
    outputs.dead_letters.append(
        letter(SourceRef(VERDICTS, 2, 4), DeadLetterReason.UNKNOWN_ATTEMPT, follow_on)
    )
    assert counts(check(cases, outputs, injected)) == {GOOD_DEAD_LETTERED: 1}
    assert check(cases, outputs, injected, bad_case_ids={"oversized"}).ok


def test_unreadable_outputs_are_reported() -> None:
    cases, outputs, injected = clean_run()
    outputs.unreadable.append("t.decisions.pass[0]@3: garbled")
    assert counts(check(cases, outputs, injected)) == {UNREADABLE: 1}


def test_examples_are_capped() -> None:
    cases, outputs, injected = clean_run()
    result = check([*cases, *(f"lost-{i}" for i in range(20))], outputs, injected)
    missing = result.rules[RULES.index(MISSING_FINAL)]
    assert missing.violations == 20
    assert len(missing.examples) == 5


def test_a_decision_id_with_two_contents_is_caught() -> None:
    cases, outputs, injected = clean_run()
    # The same id as c1's pass, with other content: what a tally that forgot the case would
    # publish after a replay (a second, different outcome under the first one's id).
    outputs.decisions.append(dataclasses.replace(passed("c1"), confidence=0.5))
    result = check(cases, outputs, injected)
    assert counts(result) == {DUPLICATE_IDS: 1, TWO_CONTENTS: 1}
    assert decision_id("c1", 1) in result.rules[RULES.index(TWO_CONTENTS)].examples[0]


def closed(at: SourceRef, record: Candidate | Verdict, final: str) -> DeadLetter:
    ref = FinalOutcomeRef(final, "pass", 1, 1)
    return dataclasses.replace(
        letter(at, DeadLetterReason.CASE_CLOSED, codec.encode(record)), closed_by=ref
    )


def test_a_replay_may_close_the_loads_records_only_with_their_final_decision() -> None:
    cases, outputs, injected = clean_run()
    right = closed(SourceRef(CANDIDATES, 0, 1), candidate("c1"), decision_id("c1", 1))
    outputs.dead_letters.append(right)
    assert counts(check(cases, outputs, injected)) == {GOOD_DEAD_LETTERED: 1}
    assert check(cases, outputs, injected, replayed_inputs=True).ok
    # Closed in the name of another decision than the case's final one: still a violation.
    wrong = closed(SourceRef(VERDICTS, 0, 2), verdict("c1", "a"), decision_id("c2", 2))
    outputs.dead_letters.append(wrong)
    result = check(cases, outputs, injected, replayed_inputs=True)
    assert counts(result) == {GOOD_DEAD_LETTERED: 1}


def test_verdicts_on_a_resubmission_of_a_finished_case_must_be_closed() -> None:
    cases, outputs, injected = clean_run()
    resubmitted = dataclasses.replace(verdict("c1", "a"), candidate_id="again")
    at = SourceRef(VERDICTS, 3, 9)
    outputs.dead_letters.append(closed(at, resubmitted, decision_id("c1", 1)))
    assert counts(check(cases, outputs, injected)) == {GOOD_DEAD_LETTERED: 1}
    assert check(cases, outputs, injected, closed_candidate_ids={"again"}).ok
    outputs.dead_letters[-1] = letter(
        at, DeadLetterReason.UNKNOWN_ATTEMPT, codec.encode(resubmitted)
    )
    result = check(cases, outputs, injected, closed_candidate_ids={"again"})
    assert counts(result) == {GOOD_DEAD_LETTERED: 1}


def test_with_the_outcomes_writer_every_passed_case_has_exactly_one_outcome() -> None:
    cases, outputs, injected = clean_run()
    one_each = [outcome_from_pass(d) for d in outputs.decisions if isinstance(d, PassDecision)]
    assert [o.case_id for o in one_each] == ["c1", "c2"]  # c3 escalated: no outcome needed
    good = dataclasses.replace(outputs, outcomes=one_each)
    assert check(cases, good, injected, outcomes_checked=True).ok
    assert check(cases, outputs, injected).ok  # without the writer, outcomes are not checked
    twice = dataclasses.replace(outputs, outcomes=[one_each[0], one_each[0]])  # c2 has none
    result = check(cases, twice, injected, outcomes_checked=True)
    assert counts(result) == {MISSING_OUTCOME: 1, MULTIPLE_OUTCOMES: 1}
    assert result.rules[RULES.index(MISSING_OUTCOME)].examples == (
        "case c2 passed and has no outcome",
    )
