"""One row per scenario run, printed as one table (and written as JSON), plus the examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ratifier.app.chaos.checker import (
    CONFLICTING,
    DOUBLE_VOTES,
    DUPLICATE_IDS,
    GOOD_DEAD_LETTERED,
    MISSING_FINAL,
    MULTIPLE_FINALS,
    TWO_CONTENTS,
    UNDECIDED,
    UNREADABLE,
    CheckResult,
    RuleResult,
)


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    scenario: str
    engine: str  # as asked for; "asked (ran other)" when the tally's log shows another
    brokers: int
    cases: int = 0
    final_outcomes: int = 0
    missing: int = 0
    multiple_finals: int = 0
    conflicting: int = 0
    undecided: int = 0
    duplicate_ids: int = 0
    two_contents: int = 0  # decision ids published with two different contents
    double_votes: int = 0
    bad_injected: int = 0
    bad_right: int = 0
    bad_wrong: int = 0
    good_dead_lettered: int = 0
    unreadable: int = 0
    faults_applied: int = 0
    seconds: float = 0.0
    error: str = ""  # why the scenario could not run to its check
    failures: tuple[RuleResult, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.error and not self.failures

    @classmethod
    def of(
        cls,
        scenario: str,
        engine: str,
        brokers: int,
        result: CheckResult,
        faults_applied: int,
        seconds: float,
        notes: Sequence[str] = (),
    ) -> ScenarioRow:
        return cls(
            scenario=scenario,
            engine=engine,
            brokers=brokers,
            cases=result.cases,
            final_outcomes=result.final_outcomes,
            missing=result.violations(MISSING_FINAL),
            multiple_finals=result.violations(MULTIPLE_FINALS),
            conflicting=result.violations(CONFLICTING),
            undecided=result.violations(UNDECIDED),
            duplicate_ids=result.violations(DUPLICATE_IDS),
            two_contents=result.violations(TWO_CONTENTS),
            double_votes=result.violations(DOUBLE_VOTES),
            bad_injected=result.bad_injected,
            bad_right=result.bad_right,
            bad_wrong=result.bad_wrong,
            good_dead_lettered=result.violations(GOOD_DEAD_LETTERED),
            unreadable=result.violations(UNREADABLE),
            faults_applied=faults_applied,
            seconds=round(seconds, 1),
            failures=tuple(result.failures()),
            notes=tuple(notes),
        )

    @classmethod
    def failed_to_run(
        cls, scenario: str, engine: str, brokers: int, error: str, faults: int, seconds: float
    ) -> ScenarioRow:
        return cls(
            scenario,
            engine,
            brokers,
            faults_applied=faults,
            seconds=round(seconds, 1),
            error=error,
        )

    def cells(self) -> list[str]:
        return [
            self.scenario,
            self.engine,
            str(self.brokers),
            str(self.cases),
            str(self.final_outcomes),
            str(self.missing),
            str(self.multiple_finals),
            str(self.conflicting),
            str(self.undecided),
            str(self.duplicate_ids),
            str(self.two_contents),
            str(self.double_votes),
            f"{self.bad_injected}/{self.bad_right}/{self.bad_wrong}",
            str(self.good_dead_lettered),
            str(self.unreadable),
            str(self.faults_applied),
            f"{self.seconds:.0f}",
            "ok" if self.ok else ("ERROR" if self.error else "FAIL"),
        ]


HEADERS = [
    "scenario",
    "engine",
    "brokers",
    "cases",
    "finals",
    "missing",
    "multi-final",
    "conflicting",
    "undecided",
    "dup-ids",
    "2-contents",
    "dup-votes",
    "bad in/right/wrong",
    "good-DL",
    "unreadable",
    "faults",
    "seconds",
    "result",
]


def format_table(rows: Sequence[ScenarioRow]) -> str:
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def format_details(rows: Sequence[ScenarioRow]) -> str:
    """Why each failing row failed: its error, or each broken rule with a few examples."""
    out: list[str] = []
    for row in rows:
        if row.ok:
            continue
        out.append(f"{row.scenario} ({row.engine}, {row.brokers} broker(s)):")
        if row.error:
            out.append(f"  error: {row.error}")
        for rule in row.failures:
            out.append(f"  {rule.name}: {rule.violations}")
            out += [f"    e.g. {example}" for example in rule.examples]
        out += [f"  note: {note}" for note in row.notes]
    return "\n".join(out)


def as_json(rows: Sequence[ScenarioRow]) -> list[dict[str, object]]:
    return [{**asdict(row), "ok": row.ok} for row in rows]
