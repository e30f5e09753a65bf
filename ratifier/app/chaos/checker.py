"""What a chaos run must leave behind, checked on everything the pipeline wrote.

:func:`read_outputs` reads the candidates, decision and dead-letter topics from the beginning
with ``isolation_level=read_committed`` (as any downstream consumer would), and :func:`check`
applies the rules to what it read. The rules, one counter each:

- every case of the load has exactly one final outcome (a pass or an escalation);
- every (case, attempt) that got a candidate has exactly one decision (never zero, never two
  of different kinds);
- no decision id is on the decision topics twice;
- no decision counts one validator's vote twice (re-sent verdicts count once);
- every injected bad record is dead-lettered exactly once, with its expected reason, and the
  injected records that must not be (re-sent and late verdicts) are not;
- no other record (the good load) is dead-lettered;
- with the outcomes writer running (``outcomes_checked``): every load case that passed has
  exactly one outcome on ``<prefix>.outcomes``, and no case has two.

Dead letters are matched to injected records by where the record was written (topic,
partition, offset from the produce acknowledgement), which each dead letter names.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    Outcome,
    PassDecision,
    RetryRequest,
    Verdict,
)
from ratifier.core.topics import TopicNames
from ratifier.io.client import assign_all
from ratifier.io.kafka import make_consumer
from ratifier.schemas import codec

EXAMPLES_PER_RULE = 5

# Rule names, in the order reports show them.
MISSING_FINAL = "missing final outcome"
MULTIPLE_FINALS = "multiple final outcomes"
CONFLICTING = "conflicting (case, attempt) decisions"
UNDECIDED = "undecided (case, attempt)"
DUPLICATE_IDS = "duplicate decision ids"
TWO_CONTENTS = "decision ids with two contents"
DOUBLE_VOTES = "votes counted twice"
BAD_INPUT_WRONG = "bad input handled wrong"
GOOD_DEAD_LETTERED = "good records dead-lettered"
UNREADABLE = "unreadable output records"
MISSING_OUTCOME = "passed cases without an outcome"
MULTIPLE_OUTCOMES = "cases with more than one outcome"
RULES = (
    MISSING_FINAL,
    MULTIPLE_FINALS,
    CONFLICTING,
    UNDECIDED,
    DUPLICATE_IDS,
    TWO_CONTENTS,
    DOUBLE_VOTES,
    BAD_INPUT_WRONG,
    GOOD_DEAD_LETTERED,
    UNREADABLE,
    MISSING_OUTCOME,
    MULTIPLE_OUTCOMES,
)


@dataclass(frozen=True, slots=True)
class SourceRef:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class InjectedRecord:
    """A record the suite wrote on purpose, and what the tally must do with it."""

    kind: str  # e.g. "garbage", "duplicate-verdict"
    source: SourceRef  # where the broker put it
    expected_reason: str | None  # the dead letter's reason; None: must NOT be dead-lettered


@dataclass(frozen=True, slots=True)
class Outputs:
    candidates: list[Candidate]
    decisions: list[Decision]
    dead_letters: list[DeadLetter]
    unreadable: list[str] = field(default_factory=list)  # where, and why it did not decode
    outcomes: list[Outcome] = field(default_factory=list)  # read only when they are checked


@dataclass(frozen=True, slots=True)
class RuleResult:
    name: str
    violations: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckResult:
    cases: int
    final_outcomes: int  # load cases with at least one final outcome
    bad_injected: int
    bad_right: int
    bad_wrong: int
    rules: tuple[RuleResult, ...]

    @property
    def ok(self) -> bool:
        return all(rule.violations == 0 for rule in self.rules)

    def violations(self, name: str) -> int:
        return next(rule.violations for rule in self.rules if rule.name == name)

    def failures(self) -> list[RuleResult]:
        return [rule for rule in self.rules if rule.violations]


class _Rule:
    """Counts violations of one rule and keeps the first few as examples."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.examples: list[str] = []

    def fail(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_PER_RULE:
            self.examples.append(example)

    def result(self) -> RuleResult:
        return RuleResult(self.name, self.count, tuple(self.examples))


def decision_kind(decision: Decision) -> str:
    if isinstance(decision, PassDecision):
        return "pass"
    return "retry" if isinstance(decision, RetryRequest) else "escalate"


def _votes(decision: Decision) -> list[list[str]]:
    """The validator ids counted for each attempt the decision carries."""
    if isinstance(decision, EscalationPacket):
        return [[v.validator_id for v in a.verdicts] for a in decision.attempts]
    return [[v.validator_id for v in decision.votes]]


def check(
    case_ids: Collection[str],
    outputs: Outputs,
    injected: Iterable[InjectedRecord],
    bad_case_ids: Collection[str] = (),
    *,
    replayed_inputs: bool = False,
    closed_candidate_ids: Collection[str] = (),
    outcomes_checked: bool = False,
) -> CheckResult:
    """Apply every rule. ``case_ids`` are the load's cases; ``bad_case_ids`` are cases whose
    candidate was itself injected bad: the validators' verdicts for such a candidate are
    verdicts for an attempt the tally never opened, so their dead letters are expected.
    ``replayed_inputs``: the tally read its inputs again (a rewind), so the load's records of
    finished cases are dead-lettered CASE_CLOSED, each naming its case's one final decision.
    ``closed_candidate_ids``: candidates injected for finished cases, whose verdicts must be
    dead-lettered CASE_CLOSED too. ``outcomes_checked``: the outcomes writer ran, so every
    passed case must have exactly one outcome."""
    rules = {name: _Rule(name) for name in RULES}
    cases = set(case_ids)

    # One entry per decision record, so a decision written twice is seen twice.
    by_attempt: dict[tuple[str, int], set[tuple[str, str]]] = defaultdict(set)
    finals: dict[str, set[tuple[str, str]]] = defaultdict(set)
    id_records: Counter[str] = Counter()
    contents: dict[str, list[Decision]] = defaultdict(list)
    for decision in outputs.decisions:
        if decision not in contents[decision.decision_id]:
            contents[decision.decision_id].append(decision)
        kind = decision_kind(decision)
        by_attempt[(decision.case_id, decision.attempt)].add((kind, decision.decision_id))
        if kind != "retry":
            finals[decision.case_id].add((kind, decision.decision_id))
        id_records[decision.decision_id] += 1
        for voters in _votes(decision):
            repeated = sorted(v for v, n in Counter(voters).items() if n > 1)
            if repeated:
                rules[DOUBLE_VOTES].fail(
                    f"{kind} {decision.decision_id} (case {decision.case_id}) counts "
                    f"{', '.join(repeated)} more than once"
                )

    for case_id in sorted(cases):
        outcomes = finals.get(case_id, set())
        if not outcomes:
            rules[MISSING_FINAL].fail(f"case {case_id} has no pass or escalation")
        elif len(outcomes) > 1:
            rules[MULTIPLE_FINALS].fail(f"case {case_id}: {sorted(outcomes)}")

    for (case_id, attempt), seen in sorted(by_attempt.items()):
        if len(seen) > 1:
            rules[CONFLICTING].fail(f"case {case_id} attempt {attempt}: {sorted(seen)}")
    attempts = {(c.case_id, c.attempt) for c in outputs.candidates if c.case_id in cases}
    for case_id, attempt in sorted(attempts - by_attempt.keys()):
        rules[UNDECIDED].fail(f"case {case_id} attempt {attempt} has a candidate, no decision")

    for decision_id, n in sorted(id_records.items()):
        if n > 1:
            rules[DUPLICATE_IDS].fail(f"decision {decision_id} written {n} times")
        kinds = contents[decision_id]
        if len(kinds) > 1:
            rules[TWO_CONTENTS].fail(
                f"decision {decision_id} (case {kinds[0].case_id}) written with "
                f"{len(kinds)} different contents: {', '.join(decision_kind(d) for d in kinds)}"
            )
    final_ids = {case_id: {d for _, d in seen} for case_id, seen in finals.items()}

    letters: dict[SourceRef, list[DeadLetter]] = defaultdict(list)
    for letter in outputs.dead_letters:
        letters[SourceRef(letter.source_topic, letter.partition, letter.offset)].append(letter)
    right = wrong = 0
    injected_at: set[SourceRef] = set()
    for record in injected:
        injected_at.add(record.source)
        reasons = [letter.reason.value for letter in letters.get(record.source, [])]
        expected = [] if record.expected_reason is None else [record.expected_reason]
        if reasons == expected:
            right += 1
            continue
        wrong += 1
        want = record.expected_reason or "no dead letter"
        got = ", ".join(reasons) or "no dead letter"
        rules[BAD_INPUT_WRONG].fail(f"{record.kind} at {record.source}: expected {want}, got {got}")
    for source, found in sorted(letters.items(), key=lambda item: str(item[0])):
        if replayed_inputs and all(_closed_by_final(letter, final_ids) for letter in found):
            continue
        if closed_candidate_ids and all(
            _judges_closed(letter, closed_candidate_ids, final_ids) for letter in found
        ):
            continue
        if source not in injected_at and not _follows_bad_case(found[0], bad_case_ids):
            listed = ", ".join(letter.reason.value for letter in found)
            rules[GOOD_DEAD_LETTERED].fail(f"{source} dead-lettered ({listed}): {found[0].detail}")

    for where in outputs.unreadable:
        rules[UNREADABLE].fail(where)

    if outcomes_checked:
        per_case = Counter(outcome.case_id for outcome in outputs.outcomes)
        passed = {c for c in cases if any(kind == "pass" for kind, _ in finals.get(c, ()))}
        for case_id in sorted(passed - per_case.keys()):
            rules[MISSING_OUTCOME].fail(f"case {case_id} passed and has no outcome")
        for case_id, n in sorted(per_case.items()):
            if n > 1:
                rules[MULTIPLE_OUTCOMES].fail(f"case {case_id} has {n} outcomes")

    return CheckResult(
        cases=len(cases),
        final_outcomes=sum(1 for c in cases if finals.get(c)),
        bad_injected=right + wrong,
        bad_right=right,
        bad_wrong=wrong,
        rules=tuple(rules[name].result() for name in RULES),
    )


def _closed_by_final(letter: DeadLetter, final_ids: dict[str, set[str]]) -> bool:
    """A CASE_CLOSED dead letter of a replayed record, naming its case's final decision."""
    if letter.reason is not DeadLetterReason.CASE_CLOSED or letter.closed_by is None:
        return False
    case_id = _case_of(letter.original)
    return case_id is not None and letter.closed_by.decision_id in final_ids.get(case_id, ())


def _judges_closed(
    letter: DeadLetter, candidate_ids: Collection[str], final_ids: dict[str, set[str]]
) -> bool:
    """A verdict on a candidate injected for a finished case, closed in the case's name."""
    try:
        verdict = codec.decode_as(letter.original, Verdict)
    except WireFormatError:
        return False
    return verdict.candidate_id in candidate_ids and _closed_by_final(letter, final_ids)


def _case_of(original: bytes) -> str | None:
    try:
        record = codec.decode(original)
    except WireFormatError:
        return None
    return record.case_id if isinstance(record, Candidate | Verdict) else None


def _follows_bad_case(letter: DeadLetter, bad_case_ids: Collection[str]) -> bool:
    try:
        verdict = codec.decode_as(letter.original, Verdict)
    except WireFormatError:
        return False
    return verdict.case_id in bad_case_ids


async def read_outputs(
    settings: Settings, timeout_s: float = 120.0, *, outcomes: bool = False
) -> Outputs:
    """Every candidate, decision and dead letter on the topics (with ``outcomes``, every
    outcome too), from the beginning to the end.

    read_committed: a transactional tally's aborted writes are not outputs, and no consumer
    downstream would see them. The end is each partition's end offset when reading starts (the
    last stable offset, under read_committed), so the fleet should be stopped first.
    """
    names = TopicNames.from_settings(settings)
    topics: tuple[str, ...] = (names.candidates, *names.decisions, names.deadletter)
    if outcomes:
        topics += (names.outcomes,)
    consumer = make_consumer(settings, group_id=None, client_id="ratifier-chaos-checker")
    candidates: list[Candidate] = []
    decisions: list[Decision] = []
    dead_letters: list[DeadLetter] = []
    written: list[Outcome] = []
    unreadable: list[str] = []
    await consumer.start()
    try:
        await assign_all(consumer, topics, from_beginning=True)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topics} to their end in {timeout_s:.0f} s")
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    where = SourceRef(record.topic, record.partition, record.offset)
                    try:
                        value = codec.decode(record.value or b"")
                    except WireFormatError as exc:
                        if record.topic != names.candidates:  # the suite writes bad candidates
                            unreadable.append(f"{where}: {exc}")
                        continue
                    if isinstance(value, Candidate):
                        candidates.append(value)
                    elif isinstance(value, DeadLetter):
                        dead_letters.append(value)
                    elif isinstance(value, PassDecision | RetryRequest | EscalationPacket):
                        decisions.append(value)
                    elif isinstance(value, Outcome):
                        written.append(value)
    finally:
        await consumer.stop()
    return Outputs(candidates, decisions, dead_letters, unreadable, written)
