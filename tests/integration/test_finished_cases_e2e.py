"""Through the real broker: one final outcome per case across time. A case resubmitted after its
state was pruned, and a tally rewound to offset 0, both leave every case with the outcome it had;
a tally whose group lost its offsets while its changelog holds state refuses to start over."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.models import (
    DeadLetter,
    DeadLetterReason,
    EscalationPacket,
    PassDecision,
    RetryRequest,
)
from ratifier.core.topics import TopicNames
from ratifier.io.admin import set_group_offsets
from ratifier.io.client import Client
from ratifier.io.testing import wait_until, write_policy
from ratifier.ops.fleet import SIMULATED, ProcessSpec
from ratifier.schemas import codec
from tests.integration.test_recovery_and_timeouts import (
    FAST_FAILOVER,
    TopicTail,
    commit_probe,
    start_fleet,
)

pytestmark = pytest.mark.integration

RETENTION_MS = 1_000  # finished cases' states are pruned a second after their decision


def one_content_per_decision_id(tail: TopicTail, names: TopicNames) -> dict[str, int]:
    """Final decisions per case; fails if any decision id was published with two contents."""
    contents: dict[str, set[bytes]] = defaultdict(set)
    finals: dict[str, int] = defaultdict(int)
    for topic, _, value in tail.records:
        if topic not in names.decisions:
            continue
        decision = codec.decode(value)
        assert isinstance(decision, PassDecision | RetryRequest | EscalationPacket)
        contents[decision.decision_id].add(value)
        if isinstance(decision, PassDecision | EscalationPacket):
            finals[decision.case_id] += 1
    repeated = {d: len(v) for d, v in contents.items() if len(v) > 1}
    assert not repeated, f"decision ids published with different contents: {repeated}"
    return finals


async def test_resubmission_and_rewind_leave_one_outcome_per_case(
    settings: Settings, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policies"
    write_policy(
        policy_dir, "pair", ["judge-a", "judge-b"], accepts=2, window_seconds=30, max_attempts=1
    )
    tuned = settings.with_overrides(
        policy_dir=policy_dir, tick_interval_s=0.2, retention_ms=RETENTION_MS
    )
    names = TopicNames.from_settings(tuned)
    judges = [
        ProcessSpec.validator(name, SIMULATED, {"error_rate": 0.0, "seed": seed})
        for seed, name in enumerate(("judge-a", "judge-b"))
    ]
    fleet = await start_fleet(tuned, ProcessSpec.tally(), *judges)
    try:
        async with (
            TopicTail(tuned, (*names.decisions, names.deadletter, names.tally_changelog)) as tail,
            Client(tuned) as client,
        ):
            decided = [
                await client.decide_case(
                    f"answer {i}", policy="pair", metadata={"truth": "accept"}, timeout_s=60
                )
                for i in range(6)
            ]
            assert not any(d.earlier for d in decided)
            cases = {d.candidate.case_id: d.outcome.decision_id for d in decided}

            async def pruned() -> bool:  # each case's state tombstoned on the changelog
                tombstones = {k for t, k, v in tail.records if t == names.tally_changelog and not v}
                return {c.encode() for c in cases} <= tombstones

            await wait_until(pruned, 20, "the finished cases' states pruned")

            # A client resubmits two cases with other content: it gets their earlier outcomes.
            for case_id in list(cases)[:2]:
                again = await client.decide_case(
                    "a different answer", case_id=case_id, policy="pair", timeout_s=30
                )
                assert again.earlier
                assert again.outcome.decision_id == cases[case_id]

            # The tally is stopped, its group rewound to 0, and started again: every input is
            # read again, and none decides anything anew.
            await fleet.stop_process("tally")
            await set_group_offsets(tuned, names.tally_app_id, (names.candidates, names.verdicts))
            async with commit_probe(
                tuned, names.tally_app_id, (names.candidates, names.verdicts)
            ) as read_everything:
                await fleet.start(ProcessSpec.tally())
                await wait_until(read_everything, 60, "the rewound tally caught up")
            await asyncio.sleep(1.0)  # room for a wrong extra decision to show up
            finals = one_content_per_decision_id(tail, names)
            letters = [
                codec.decode_as(v, DeadLetter) for t, _, v in tail.records if t == names.deadletter
            ]
    finally:
        await fleet.stop()

    assert finals == dict.fromkeys(cases, 1), "exactly one final outcome per case"
    closed = [letter for letter in letters if letter.reason is DeadLetterReason.CASE_CLOSED]
    # Every candidate of the rewound input (6 first submissions + 2 resubmissions) is closed.
    closed_candidates = [x for x in closed if x.source_topic == names.candidates]
    assert len(closed_candidates) >= 6 + 2
    for letter in closed:
        assert letter.closed_by is not None
        assert letter.closed_by.decision_id in cases.values()


async def test_the_faust_adapter_remembers_finished_cases_too(
    settings: Settings, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "one", ["judge-a"], accepts=1, window_seconds=30, max_attempts=1)
    tuned = settings.with_overrides(
        policy_dir=policy_dir,
        tick_interval_s=0.2,
        retention_ms=RETENTION_MS,
        tally_engine="faust",
    )
    names = TopicNames.from_settings(tuned)
    judge = ProcessSpec.validator("judge-a", SIMULATED, {"error_rate": 0.0, "seed": 1})
    fleet = await start_fleet(tuned, ProcessSpec.tally(), judge, extra_env=FAST_FAILOVER)
    try:
        topics = (*names.decisions, names.tally_changelog)
        async with TopicTail(tuned, topics) as tail, Client(tuned) as client:
            first = await client.decide_case(
                "answer", policy="one", metadata={"truth": "accept"}, timeout_s=60
            )
            case_id = first.candidate.case_id

            async def pruned() -> bool:  # the case's state tombstoned on the changelog
                return any(
                    t == names.tally_changelog and k == case_id.encode() and not v
                    for t, k, v in tail.records
                )

            await wait_until(pruned, 20, "the finished case's state pruned")
            again = await client.decide_case(
                "other", case_id=case_id, policy="one", metadata={"truth": "accept"}, timeout_s=30
            )
            await asyncio.sleep(1.0)  # room for a wrong extra decision to show up
            finals = one_content_per_decision_id(tail, names)
    finally:
        await fleet.stop()
    assert again.earlier
    assert again.outcome.decision_id == first.outcome.decision_id
    assert finals == {case_id: 1}


async def test_a_group_without_offsets_but_with_state_refuses_to_start_over(
    settings: Settings, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "pair", ["judge-a"], accepts=1, window_seconds=30, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)
    names = TopicNames.from_settings(tuned)
    judge = ProcessSpec.validator("judge-a", SIMULATED, {"error_rate": 0.0, "seed": 1})
    fleet = await start_fleet(tuned, ProcessSpec.tally(), judge)
    try:
        async with Client(tuned) as client:
            await client.decide("answer", policy="pair", metadata={"truth": "accept"})
        await fleet.stop_process("tally")
        # -1 is what the broker answers for "no committed offset": as if they were deleted.
        await set_group_offsets(tuned, names.tally_app_id, (names.candidates,), offset=-1)
        await fleet.start(ProcessSpec.tally())

        async def stopped() -> bool:
            return "tally" in fleet.exited()

        await wait_until(stopped, 60, "the tally to stop")
        log = (fleet.log_dir / "tally.log").read_text(errors="replace")
    finally:
        await fleet.stop()
    assert f"consumer group {names.tally_app_id} has no committed offset" in log
    assert "Traceback" not in log
