"""Scores a demo run: outcome counts and the error rate of published answers against truth."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ratifier.core.models import Decision, EscalationPacket, PassDecision, RetryRequest


@dataclass(frozen=True, slots=True)
class DemoSummary:
    cases: int
    passed: int
    retried: int
    escalated: int
    first_attempt_consensus_rate: float
    mean_attempts: float
    escalation_rate: float
    published_error_rate: float
    no_final_outcome: int
    more_than_one_final_outcome: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("cases", str(self.cases)),
            ("passed", str(self.passed)),
            ("retried (at least once)", str(self.retried)),
            ("escalated", str(self.escalated)),
            ("first-attempt consensus rate", f"{self.first_attempt_consensus_rate:.1%}"),
            ("mean attempts", f"{self.mean_attempts:.2f}"),
            ("escalation rate", f"{self.escalation_rate:.1%}"),
            ("error rate of published answers", f"{self.published_error_rate:.1%}"),
            ("cases with no final outcome", str(self.no_final_outcome)),
            ("cases with more than one final outcome", str(self.more_than_one_final_outcome)),
        ]


def summarize(case_ids: Iterable[str], decisions: Iterable[Decision]) -> DemoSummary:
    cases = set(case_ids)
    finals: dict[str, dict[str, Decision]] = defaultdict(dict)  # case -> decision id -> decision
    retried: set[str] = set()
    for decision in decisions:
        if decision.case_id not in cases:
            continue
        if isinstance(decision, RetryRequest):
            retried.add(decision.case_id)
        else:
            finals[decision.case_id][decision.decision_id] = decision
    passes = [d for fs in finals.values() for d in fs.values() if isinstance(d, PassDecision)]
    escalations = [
        d for fs in finals.values() for d in fs.values() if isinstance(d, EscalationPacket)
    ]
    # An escalation's attempt is the one that never came after RETRY_TIMEOUT: count what ran.
    attempts = [d.attempt for d in passes] + [len(d.attempts) for d in escalations]
    wrong = sum(1 for d in passes if d.candidate.metadata.get("truth") != "accept")
    total = len(cases) or 1
    return DemoSummary(
        cases=len(cases),
        passed=len({d.case_id for d in passes}),
        retried=len(retried),
        escalated=len({d.case_id for d in escalations}),
        first_attempt_consensus_rate=len({d.case_id for d in passes if d.attempt == 1}) / total,
        mean_attempts=sum(attempts) / len(attempts) if attempts else 0.0,
        escalation_rate=len({d.case_id for d in escalations}) / total,
        published_error_rate=wrong / len(passes) if passes else 0.0,
        no_final_outcome=sum(1 for c in cases if not finals.get(c)),
        more_than_one_final_outcome=sum(1 for fs in finals.values() if len(fs) > 1),
    )
