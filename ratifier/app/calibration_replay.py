"""Labelled history replayed through the tally's pure rules, offline: what a policy would have
decided, for every M and weighting mode (``ratifier calibrate``; docs/calibration.md).

Each labelled item becomes a case whose validators are the workers who labelled it, in file
order. Attempt 1's candidate proposes the dataset's positive label: a worker who gave that label
ACCEPTs, any other REJECTs. If attempt 1 fails, attempt 2 proposes the negative label (the
generator's "other answer"), with the votes read the same way; if that fails too the case is
escalated, and counted as the negative label for accuracy (the references break ties that way).
Every verdict goes through :func:`ratifier.streams.rules.tally.on_verdict` one by one, so the
decisions are the tally's own, early decisions included.

Modes (validator weights; the threshold is ``accepts = M`` for ``majority``, else "more than
(M - 1) / N of the weight", a ratio of ``(M - 1) / N + 1e-6``: exactly M-of-N when the weights
are equal, and a strict weighted majority for M = N/2 + 1):

- ``majority``: equal weights.
- ``weighted``: log-odds weights of each worker's reliability estimated by batch Dawid-Skene on
  the whole history (a reference: it has seen every item before deciding any).
- ``online``: log-odds weights from :class:`~ratifier.core.calibration.OnlineReliability`,
  learned from the cases decided before this one, in file order, exactly as a tally with
  ``[reliability] learn = "online"`` learns (:func:`ratifier.streams.rules.learning.learn`: each
  decided attempt's counted verdicts, weighted by the model's posterior).

Validator calls: a parallel tally asks every validator on every attempt (``N`` per attempt).
``sequential_calls`` counts the verdicts the rules had read when the attempt was decided, with
validators asked one at a time in the declared (file) order: what the sequential mode would
spend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ratifier.core.calibration import (
    LabelledItem,
    LabelledSet,
    OnlineReliability,
    dawid_skene,
    reliability_weight,
)
from ratifier.core.models import (
    Candidate,
    Decision,
    EscalationPacket,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy, Threshold, ValidatorSpec
from ratifier.streams.rules.learning import learn
from ratifier.streams.rules.state import AttemptState, CaseState
from ratifier.streams.rules.tally import SourceRef, TallySettings, on_candidate, on_verdict

__all__ = ["MODES", "ReplayResult", "ReplayScore", "policy_for", "replay", "replay_all"]

MODES = ("majority", "weighted", "online")
_SETTINGS = TallySettings(hold_ms=1_000, retention_ms=1_000, retry_wait_ms=1_000)
_SOURCE = SourceRef("offline", 0, 0)
_T0 = 1_700_000_000_000
# "More than" a share, as a ratio the tally compares with >=: far above its 1e-9 tolerance, far
# below any difference real weights make.
_MORE_THAN = 1e-6


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """One (mode, M) replay of a labelled set."""

    mode: str
    m: int
    cases: int
    first_attempt_passes: int
    passes: int
    escalations: int
    wrong_passes: int  # passes whose label is not the gold label
    correct: int  # final answers equal to gold (an escalation counts as the negative label)
    parallel_calls: int  # every validator on every attempt
    sequential_calls: int  # verdicts read until each attempt was decided

    @property
    def first_attempt_consensus(self) -> float:
        return self.first_attempt_passes / self.cases

    @property
    def escalation_rate(self) -> float:
        return self.escalations / self.cases

    @property
    def pass_error_rate(self) -> float:
        return self.wrong_passes / self.passes if self.passes else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases

    def as_json(self) -> dict[str, float | int | str]:
        return {
            "mode": self.mode,
            "m": self.m,
            "cases": self.cases,
            "first_attempt_consensus": self.first_attempt_consensus,
            "escalation_rate": self.escalation_rate,
            "pass_error_rate": self.pass_error_rate,
            "accuracy": self.accuracy,
            "parallel_calls": self.parallel_calls,
            "sequential_calls": self.sequential_calls,
            "parallel_calls_per_case": self.parallel_calls / self.cases,
            "sequential_calls_per_case": self.sequential_calls / self.cases,
        }


def replay_all(data: LabelledSet, modes: tuple[str, ...] = MODES) -> list[ReplayResult]:
    """Every mode, for every M from 1 to the smallest panel size."""
    n = min(len(item.labels) for item in data.items)
    weights = _batch_weights(data) if "weighted" in modes else {}
    return [replay(data, mode, m, weights=weights) for mode in modes for m in range(1, n + 1)]


def replay(
    data: LabelledSet,
    mode: str,
    m: int,
    *,
    weights: Mapping[str, float] | None = None,
    online: OnlineReliability | None = None,
) -> ReplayResult:
    """Replay ``data`` under M and ``mode``. ``weights`` (weighted mode) default to batch
    Dawid-Skene's; ``online`` (online mode) is the model to start from and is updated."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "weighted" and weights is None:
        weights = _batch_weights(data)
    if mode == "online" and online is None:
        online = OnlineReliability()
    score = ReplayScore(data)
    for item in data.items:
        n = len(item.labels)
        if not 1 <= m <= n:
            raise ValueError(f"item {item.item_id} has {n} labels, fewer than M = {m}")
        policy = policy_for(item, mode, m, weights, online)
        decisions, read, settled = _decide(item, policy, data)
        score.add(item, decisions, read)
        if online is not None:
            # As the tally learns (streams/learning.py): each settled attempt, its verdicts
            # counted and late, weighted by the model's posterior (soft online Dawid-Skene).
            for attempt in settled:
                learn(online, policy, attempt)
    return score.result(mode, m)


@dataclass(slots=True)
class ReplayScore:
    """The running totals of a replay of ``data``: the offline one here, and ``ratifier
    replay``'s from the decisions it reads back from the broker (ratifier.app.replay)."""

    data: LabelledSet
    cases: int = 0
    first: int = 0
    passes: int = 0
    escalations: int = 0
    wrong: int = 0
    correct: int = 0
    parallel: int = 0
    sequential: int = 0

    def add(self, item: LabelledItem, decisions: Sequence[Decision], read: int) -> None:
        """Count ``item``'s decisions (in attempt order) and the verdicts ``read`` until each
        of its attempts was decided."""
        final = decisions[-1]
        answer = self.data.negative
        if isinstance(final, PassDecision):
            answer = self.data.positive if final.attempt == 1 else self.data.negative
            self.passes += 1
            self.first += final.attempt == 1
            self.wrong += answer != item.gold
        else:
            self.escalations += 1
        self.cases += 1
        self.correct += answer == item.gold
        self.parallel += len(item.labels) * len(decisions)
        self.sequential += read

    def result(self, mode: str, m: int) -> ReplayResult:
        return ReplayResult(
            mode,
            m,
            self.cases,
            self.first,
            self.passes,
            self.escalations,
            self.wrong,
            self.correct,
            self.parallel,
            self.sequential,
        )


def _batch_weights(data: LabelledSet) -> dict[str, float]:
    return dict(dawid_skene(data).reliabilities)


def policy_for(
    item: LabelledItem,
    mode: str,
    m: int,
    batch: Mapping[str, float] | None = None,
    online: OnlineReliability | None = None,
) -> Policy:
    """The policy of ``item``'s case: its workers as validators, M and the mode's weights
    (``batch``: reliabilities for the weighted mode; ``online``: the model, for the online mode;
    without it every worker has the prior's weight, as a tally that learns starts out)."""
    return _policy(item, mode, m, _weights_for(item, mode, batch, online))


def _weights_for(
    item: LabelledItem,
    mode: str,
    batch: Mapping[str, float] | None,
    online: OnlineReliability | None,
) -> dict[str, tuple[float, float]]:
    # Reliabilities stay in (0.5, 1): a worker estimated worse than a coin flip gets the least
    # weight rather than a negative one (the tally's weights must be > 0).
    """validator -> (policy weight, reliability) for this case."""
    out: dict[str, tuple[float, float]] = {}
    for worker, _ in item.labels:
        if mode == "majority":
            out[worker] = (1.0, 0.8)
        elif mode == "weighted":
            assert batch is not None
            r = min(max(batch.get(worker, 0.8), 0.501), 0.999)
            out[worker] = (reliability_weight(r), r)
        else:
            r = (online or OnlineReliability()).reliability(worker)
            out[worker] = (reliability_weight(r), r)
    return out


def _policy(item: LabelledItem, mode: str, m: int, table: dict[str, tuple[float, float]]) -> Policy:
    n = len(item.labels)
    more_than = (m - 1) / n + _MORE_THAN
    threshold = Threshold(accepts=m) if mode == "majority" else Threshold(ratio=more_than)
    return Policy(
        name="replay",
        version=mode,
        validators=tuple(
            ValidatorSpec(id=worker, weight=weight, reliability=reliability)
            for worker, (weight, reliability) in table.items()
        ),
        threshold=threshold,
        max_attempts=2,
        window_ms=3_600_000,
        # Early decisions, failures too: the sequential column counts the verdicts read until
        # the rules decide, which a failure held for a complete packet would make all of them.
        complete_packets=False,
        # The weights above are already the learned ones (as the tally's effective policy
        # has them); the flag makes the rules keep late verdicts for learning, as they do there.
        learn_reliability=mode == "online",
    )


def _decide(
    item: LabelledItem, policy: Policy, data: LabelledSet
) -> tuple[list[Decision], int, list[AttemptState]]:
    """Both attempts through the rules: the decisions, the verdicts read until each attempt was
    decided, and the attempts settled. Every validator answers each attempt, as in a parallel
    tally: the verdicts after the decision arrive late (and settle the attempt)."""
    decisions: list[Decision] = []
    settled: list[AttemptState] = []
    state: CaseState | None = None
    read = 0
    for attempt, proposed in ((1, data.positive), (2, data.negative)):
        candidate = Candidate(
            case_id=item.item_id,
            attempt=attempt,
            candidate_id=f"{item.item_id}/{attempt}",
            policy=policy.name,
            category="general",
            query="",
            content=proposed,
            producer="offline",
            produced_at_ms=_T0,
        )
        step = on_candidate(state, candidate, policy, _T0, _SETTINGS)
        state = step.state
        decided = False
        for worker, label in item.labels:
            verdict = Verdict(
                case_id=item.item_id,
                attempt=attempt,
                candidate_id=candidate.candidate_id,
                validator_id=worker,
                validator_version="label",
                vote=Vote.ACCEPT if label == proposed else Vote.REJECT,
                confidence=1.0,
                severity=None,
                reasons=(),
                latency_ms=0,
                produced_at_ms=_T0,
            )
            read += not decided
            step = on_verdict(state, verdict, _SOURCE, {policy.name: policy}, _T0, _SETTINGS)
            state = step.state
            settled.extend(step.settled)
            if step.decisions:
                decisions.extend(step.decisions)
                decided = True
        if not decided:
            raise AssertionError(f"no decision for {item.item_id} with every vote in")
        if not isinstance(decisions[-1], RetryRequest):
            break
    assert isinstance(decisions[-1], PassDecision | EscalationPacket)
    return decisions, read, settled
