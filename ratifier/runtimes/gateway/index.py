"""What the gateway knows of each case: its latest decision and its outcome, kept in memory.

Fed by two followers (``GatewayService``): every decision from the decision topics
(``Client.decisions``, read_committed, each decision id once) and every committed outcome from
``<prefix>.outcomes``. Both read from the beginning at start, so any replica answers for any
case still on the topics. Bounded: past ``capacity`` cases, the least recently changed go first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from ratifier.core.jsonview import to_json
from ratifier.core.models import Decision, EscalationPacket, Outcome, PassDecision, RetryRequest

DEFAULT_CAPACITY = 100_000


class Status(StrEnum):
    SUBMITTED = "submitted"  # sent through this gateway, no decision seen yet
    RETRYING = "retrying"  # an attempt failed; the generator's next attempt is awaited
    PASSED = "passed"  # final: a pass decision
    ESCALATED = "escalated"  # final: escalated to human review (the outcome follows)


@dataclass(slots=True)
class _Case:
    decision: Decision | None = None
    outcome: Outcome | None = None

    @property
    def status(self) -> Status:
        if isinstance(self.decision, PassDecision):
            return Status.PASSED
        if isinstance(self.decision, EscalationPacket):
            return Status.ESCALATED
        if isinstance(self.decision, RetryRequest):
            return Status.RETRYING
        return Status.SUBMITTED

    @property
    def final(self) -> bool:
        return self.status in (Status.PASSED, Status.ESCALATED)


def _json(record: Any) -> Any:
    return None if record is None else orjson.loads(to_json(record))


class CaseIndex:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._cases: OrderedDict[str, _Case] = OrderedDict()
        self._capacity = capacity
        self._final_events: dict[str, asyncio.Event] = {}  # only for cases someone waits on
        self._waiting: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._cases)

    def _entry(self, case_id: str) -> _Case:
        case = self._cases.get(case_id)
        if case is None:
            case = self._cases[case_id] = _Case()
            if len(self._cases) > self._capacity:
                self._cases.popitem(last=False)
        else:
            self._cases.move_to_end(case_id)
        return case

    def submitted(self, case_id: str) -> None:
        self._entry(case_id)

    def on_decision(self, decision: Decision) -> None:
        case = self._entry(decision.case_id)
        if case.final and not isinstance(decision, PassDecision | EscalationPacket):
            return  # a case's records arrive in order; a final decision is not undone
        case.decision = decision
        if case.final and (event := self._final_events.get(decision.case_id)) is not None:
            event.set()

    def on_outcome(self, outcome: Outcome) -> None:
        self._entry(outcome.case_id).outcome = outcome

    def view(self, case_id: str) -> dict[str, Any] | None:
        """The case as the API shows it, or None if the gateway knows nothing of it."""
        case = self._cases.get(case_id)
        if case is None:
            return None
        decision = case.decision
        return {
            "case_id": case_id,
            "status": case.status.value,
            "final": case.final,
            "attempt": None if decision is None else decision.attempt,
            "decision": _json(decision),
            "outcome": _json(case.outcome),
        }

    async def wait_final(self, case_id: str, timeout_s: float) -> None:
        """Return once the case has a final decision, or after ``timeout_s`` (no error)."""
        case = self._cases.get(case_id)
        if (case is not None and case.final) or timeout_s <= 0:
            return
        event = self._final_events.setdefault(case_id, asyncio.Event())
        self._waiting[case_id] = self._waiting.get(case_id, 0) + 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await event.wait()
        finally:
            self._waiting[case_id] -= 1
            if not self._waiting[case_id]:
                del self._waiting[case_id]
                del self._final_events[case_id]
