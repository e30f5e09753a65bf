"""Sequential consensus in the validator runtime: a candidate whose attempt the tally already
decided is skipped, with no call to the judge and no verdict (the broker path is in
tests/integration/test_sequential_e2e.py)."""

from __future__ import annotations

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Judgement, Vote
from ratifier.validators.runtime import ValidatorWorker


def candidate(attempt: int) -> Candidate:
    return Candidate("case-1", attempt, f"c{attempt}", "p", "general", "q", "a", "gen", 0)


async def test_a_decided_attempt_is_skipped_without_calling_the_judge() -> None:
    calls: list[str] = []

    async def judge(c: Candidate) -> Judgement:
        calls.append(c.candidate_id)
        return Judgement(Vote.ACCEPT)

    worker = ValidatorWorker(Settings(), "late-wave", judge, skip_decided=True)
    try:
        assert worker.decided is not None
        worker.decided.add("case-1", 1)
        assert ("case-1", 1) in worker.decided
        assert ("case-1", 2) not in worker.decided
        assert await worker._judge_one(candidate(1)) is False
        assert (worker.skipped_decided, calls) == (1, [])
    finally:
        await worker.stop()  # never started: closes the clients it made


async def test_without_skip_decided_there_is_no_decision_reader() -> None:
    async def judge(c: Candidate) -> Judgement:
        return Judgement(Vote.ACCEPT)

    worker = ValidatorWorker(Settings(), "v", judge)
    try:
        assert worker.decided is None
    finally:
        await worker.stop()
