"""Debate rounds with simulated validators: rounds, judge calls and accuracy (docs/debate.md).

    .venv/bin/python bench/run.py debate [--cases 4000] [--error-rate 0.25] [--seed 1]

Offline: the tally's own rules (``on_candidate`` / ``on_verdict``) decide, and five judges
answer each round with what the validator runtime would show them (:func:`peer_verdicts`).
Compared in the same run: one round of 3 of 5 (no debate, the baseline), a debate of independent
judges (each round a fresh draw), and debates whose judges herd (copy the majority shown with
probability h). Two sources of votes:

* simulated truth, half the candidates acceptable, :class:`SimulatedValidator` judges with
  independent errors: the protocol alone;
* real history, RTE of ``../shared/datasets/snow2008`` (800 items, 10 crowd labels each, gold),
  when present: a judge's vote in a round is one of the item's real labels, drawn at random, so
  hard items stay hard in every round (errors correlated through the item, as with real judges).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratifier.core.calibration import LabelledItem, read_standardized_tsv
from ratifier.core.models import (
    Candidate,
    Decision,
    EscalationPacket,
    FailureReason,
    Judgement,
    PassDecision,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy
from ratifier.streams.rules.state import CaseState
from ratifier.streams.rules.tally import SourceRef, TallySettings, on_candidate, on_verdict
from ratifier.validators.builtin.simulated import SimulatedValidator
from ratifier.validators.runtime import Peers, peer_verdicts, to_verdict

VALIDATORS = ("v1", "v2", "v3", "v4", "v5")
SETTINGS = TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=60_000)
SOURCE = SourceRef("bench", 0, 0)
HERDING = (0.0, 0.5, 0.9)
RTE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "snow2008"
RTE = RTE / "rte.standardized.tsv"
# A judge of a debate: (validator id, candidate, peers shown or None in round 1) -> judgement.
JudgeOf = Callable[[str, Candidate, Peers | None], Judgement]


@dataclass(slots=True)
class Figures:
    name: str
    cases: int = 0
    rounds: int = 0
    calls: int = 0
    right: int = 0  # passed an acceptable candidate or failed an unacceptable one
    wrong_pass: int = 0  # passed an unacceptable candidate: the costly error
    undecided: int = 0  # NO_SUPERMAJORITY: to a human

    def row(self) -> str:
        decided = self.cases - self.undecided
        return (
            f"{self.name:<28} {self.rounds / self.cases:6.2f} {self.calls / self.cases:6.2f} "
            f"{self.right / max(decided, 1):9.3f} {self.wrong_pass / self.cases:10.3f} "
            f"{self.undecided / self.cases:10.3f}"
        )


def policy(debate: bool) -> Policy:
    data: dict[str, Any] = {
        "name": "bench",
        "version": "1",
        "max_attempts": 1,
        "threshold": {"accepts": 3},
        "validators": [{"id": v} for v in VALIDATORS],
    }
    if debate:
        data["debate"] = {"min_rounds": 2, "max_rounds": 4, "supermajority": 0.75}
    return Policy.from_mapping(data, "bench")


def run(name: str, debate: bool, herding: float, cases: int, error: float, seed: int) -> Figures:
    """Simulated truth, half the candidates acceptable; judges wrong with ``error``."""
    judges = {
        v: SimulatedValidator(error_rate=error, seed=f"{seed}/{v}", herding=herding)
        for v in VALIDATORS
    }
    truths = ["accept" if n % 2 == 0 else "reject" for n in range(cases)]
    return _run(name, policy(debate), truths, lambda v, c, p: judges[v].decide(c, p))


def run_history(name: str, debate: bool, herding: float, items: list[LabelledItem]) -> Figures:
    """Real history: each vote one of the item's real labels (positive: the larger label)."""
    positive = max(label for item in items for _, label in item.labels)

    def judge(validator: str, candidate: Candidate, peers: Peers | None) -> Judgement:
        item = items[int(candidate.case_id.removeprefix("case-"))]
        key = f"{candidate.case_id}/{validator}/{peers.round if peers else 1}"
        if peers is not None and _uniform(key + "/herd") < herding:
            accepts = sum(p.vote is Vote.ACCEPT for p in peers.verdicts)
            if 2 * accepts != len(peers.verdicts):
                return Judgement(Vote.ACCEPT if 2 * accepts > len(peers.verdicts) else Vote.REJECT)
        _, label = item.labels[int(_uniform(key) * len(item.labels))]
        return Judgement(Vote.ACCEPT if label == positive else Vote.REJECT)

    truths = ["accept" if item.gold == positive else "reject" for item in items]
    return _run(name, policy(debate), truths, judge)


def _uniform(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * 2.0**-53


def _run(name: str, rules: Policy, truths: list[str], judge: JudgeOf) -> Figures:
    figures = Figures(name)
    for n, truth in enumerate(truths):
        candidate = Candidate(
            f"case-{n}", 1, f"cand-{n}", "bench", "g", "q", "a", "bench", 0, (), {"truth": truth}
        )
        decision = _decide(rules, candidate, judge, figures)
        figures.cases += 1
        passed = isinstance(decision, PassDecision)
        if isinstance(decision, EscalationPacket):
            failure = decision.attempts[-1].failure
            if failure is FailureReason.NO_SUPERMAJORITY:
                figures.undecided += 1
                continue
        figures.right += passed == (truth == "accept")
        figures.wrong_pass += passed and truth == "reject"
    return figures


def _decide(rules: Policy, candidate: Candidate, judge: JudgeOf, figures: Figures) -> Decision:
    policies = {rules.name: rules}
    step = on_candidate(None, candidate, rules, 0, SETTINGS)
    state: CaseState | None = step.state
    shown: dict[str, Peers | None] = dict.fromkeys(VALIDATORS)
    round_: int | None = None
    while True:
        figures.rounds += 1
        figures.calls += len(VALIDATORS)  # every validator judges every round it is sent
        for validator in VALIDATORS:
            judgement = judge(validator, candidate, shown[validator])
            verdict: Verdict = to_verdict(
                candidate,
                judgement,
                validator_id=validator,
                validator_version="1",
                latency_ms=0,
                round_=round_,
            )
            step = on_verdict(state, verdict, SOURCE, policies, 0, SETTINGS)
            state = step.state
            if step.decisions:
                return step.decisions[0]
            if step.rounds:
                (request,) = step.rounds
                round_ = request.round
                shown = {v: peer_verdicts(request, v) for v in VALIDATORS}
                break


def main(cases: int, error: float, seed: int) -> int:
    print(
        f"{cases} simulated cases, half acceptable; 5 judges each wrong with p = {error}; "
        "debate: min_rounds 2, max_rounds 4, supermajority 0.75"
    )
    print(
        f"{'':<28} {'rounds':>6} {'calls':>6} {'accuracy':>9} {'wrong pass':>10} {'undecided':>10}"
    )
    baseline = run("one round, 3 of 5", False, 0.0, cases, error, seed)
    print(baseline.row())
    for h in HERDING:
        label = "debate, independent" if h == 0 else f"debate, herding h = {h:g}"
        print(run(label, True, h, cases, error, seed).row())
    if RTE.exists():
        items = list(read_standardized_tsv(RTE).items)
        print(f"real history: {RTE.name}, {len(items)} items; each vote one of the item's labels")
        print(run_history("one round, 3 of 5", False, 0.0, items).row())
        for h in HERDING:
            label = "debate, independent" if h == 0 else f"debate, herding h = {h:g}"
            print(run_history(label, True, h, items).row())
    else:
        print(f"real history skipped: {RTE} is not there")
    print("calls: judge calls per case (every validator judges every round, as in the runtime)")
    print("accuracy: right decisions / decided cases; undecided: NO_SUPERMAJORITY (to a human)")
    return 0
