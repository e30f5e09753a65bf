"""One fixed-width line per decision or outcome, for ``watch`` and ``outcomes tail`` with
``--format table``: lines that stream (no table to close) and stay one line for grep."""

from __future__ import annotations

import time

from ratifier.core.models import Decision, Outcome, PassDecision, RetryRequest

DECISION_HEADER = f"{'time':<8}  {'decision':<8}  {'case':<36}  {'att':>3}  {'policy':<12}  detail"
OUTCOME_HEADER = f"{'time':<8}  {'outcome':<10}  {'case':<36}  {'reviewer':<14}  answer"


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def _short(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def decision_row(decision: Decision) -> str:
    if isinstance(decision, PassDecision):
        kind, detail = "pass", f"confidence {decision.confidence:.3f}, {len(decision.votes)} votes"
    elif isinstance(decision, RetryRequest):
        kind = "retry"
        detail = f"{decision.reason.value}, {len(decision.dissent)} dissenting"
    else:
        kind, detail = "escalate", f"{decision.reason.value}, {len(decision.attempts)} attempts"
    return (
        f"{_clock(decision.decided_at_ms):<8}  {kind:<8}  {decision.case_id:<36}  "
        f"{decision.attempt:>3}  {decision.policy:<12}  {detail}"
    )


def outcome_row(outcome: Outcome) -> str:
    answer = _short(outcome.content) if outcome.content is not None else f"({outcome.note or ''})"
    return (
        f"{_clock(outcome.decided_at_ms):<8}  {outcome.kind.value:<10}  {outcome.case_id:<36}  "
        f"{outcome.reviewer:<14}  {answer}"
    )
