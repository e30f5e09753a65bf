from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import pytest

from ratifier.core.errors import ConfigError
from ratifier.core.models import Candidate, Judgement, Severity, Vote
from ratifier.validators.builtin import SimulatedValidator

N = 4000


def make_candidate(i: int, truth: str | None = "accept", key: str = "truth") -> Candidate:
    return Candidate(
        case_id=f"case-{i}",
        attempt=1,
        candidate_id=f"cand-{i}",
        policy="default",
        category="sim",
        query="q",
        content="c",
        producer="unit",
        produced_at_ms=0,
        metadata={} if truth is None else {key: truth},
    )


def population(n: int = N) -> list[Candidate]:
    rng = random.Random(1234)
    return [make_candidate(i, rng.choice(["accept", "reject"])) for i in range(n)]


def is_wrong(candidate: Candidate, judgement: Judgement) -> bool:
    return judgement.vote.value.lower() != candidate.metadata["truth"]


@pytest.mark.parametrize("error_rate", [0.0, 0.05, 0.1, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("seed", [7, None])
async def test_error_rate_is_close_to_configured(error_rate: float, seed: int | None) -> None:
    validator = SimulatedValidator(error_rate=error_rate, seed=seed)
    candidates = population()
    wrong = sum([is_wrong(c, await validator(c)) for c in candidates])
    # Binomial: 5 standard deviations, so a correct implementation essentially never fails.
    tolerance = 5 * math.sqrt(error_rate * (1 - error_rate) / N)
    assert abs(wrong / N - error_rate) <= tolerance


async def test_errors_are_balanced_between_truths() -> None:
    validator = SimulatedValidator(error_rate=0.2, seed=3)
    candidates = population()
    for truth in ("accept", "reject"):
        group = [c for c in candidates if c.metadata["truth"] == truth]
        rate = sum([is_wrong(c, await validator(c)) for c in group]) / len(group)
        assert abs(rate - 0.2) < 0.05


async def test_same_seed_agrees_across_instances_and_orders() -> None:
    candidates = population(1000)
    first = SimulatedValidator(error_rate=0.3, seed=42)
    second = SimulatedValidator(error_rate=0.3, seed=42)
    shuffled = list(candidates)
    random.Random(9).shuffle(shuffled)
    votes_first = {c.candidate_id: await first(c) for c in candidates}
    votes_second = {c.candidate_id: await second(c) for c in shuffled}
    assert votes_first == votes_second
    # Judging again (a replay) changes nothing either.
    assert {c.candidate_id: await first(c) for c in shuffled} == votes_first


async def test_different_seeds_err_independently() -> None:
    candidates = population()
    a = SimulatedValidator(error_rate=0.5, seed=1)
    b = SimulatedValidator(error_rate=0.5, seed=2)
    agree = sum([(await a(c)).vote == (await b(c)).vote for c in candidates])
    assert abs(agree / N - 0.5) < 0.05  # independent coin flips agree half the time


async def test_errors_at_a_lower_rate_are_a_subset() -> None:
    # Same seed, same draw: raising the error rate only adds errors (handy for sweeps).
    candidates = population(1000)
    low = SimulatedValidator(error_rate=0.1, seed=5)
    high = SimulatedValidator(error_rate=0.3, seed=5)
    for candidate in candidates:
        if is_wrong(candidate, await low(candidate)):
            assert is_wrong(candidate, await high(candidate))


async def test_decision_depends_on_the_candidate_id_only() -> None:
    validator = SimulatedValidator(error_rate=0.5, seed=11)
    base = make_candidate(1, "reject")
    votes = set()
    for case_id in ("x", "y", "z"):
        other = Candidate(**{**_fields(base), "case_id": case_id, "content": case_id})
        votes.add((await validator(other)).vote)
    assert len(votes) == 1


def _fields(candidate: Candidate) -> dict[str, Any]:
    return {name: getattr(candidate, name) for name in Candidate.__slots__}


@pytest.mark.parametrize(
    ("truth", "red_team", "vote", "severity", "code"),
    [
        ("accept", False, Vote.ACCEPT, None, None),
        ("reject", False, Vote.REJECT, Severity.MAJOR, "sim.factual_error"),
        ("Reject ", False, Vote.REJECT, Severity.MAJOR, "sim.factual_error"),
        ("accept", True, Vote.ACCEPT, None, None),
        ("reject", True, Vote.REJECT, Severity.CRITICAL, "sim.safety_violation"),
    ],
)
async def test_votes_severities_and_reasons(
    truth: str, red_team: bool, vote: Vote, severity: Severity | None, code: str | None
) -> None:
    validator = SimulatedValidator(error_rate=0.0, seed=1, red_team=red_team)
    judgement = await validator(make_candidate(3, truth))
    assert judgement.vote is vote
    assert judgement.severity is severity
    if code is None:
        assert judgement.reasons == ()
    else:
        (reason,) = judgement.reasons
        assert reason.code == code
        assert "case-3" in reason.message


async def test_wrong_rejections_are_still_structured() -> None:
    validator = SimulatedValidator(error_rate=1.0, seed=1)
    judgement = await validator(make_candidate(4, "accept"))
    assert judgement.vote is Vote.REJECT
    assert judgement.severity is Severity.MAJOR
    assert judgement.reasons[0].code == "sim.factual_error"


async def test_reject_codes_are_drawn_from_the_list() -> None:
    codes = ["sim.factual_error", "sim.unsupported_claim", "sim.off_topic"]
    validator = SimulatedValidator(error_rate=0.0, seed=2, reject_codes=codes)
    seen = {(await validator(make_candidate(i, "reject"))).reasons[0].code for i in range(200)}
    assert seen == set(codes)


@pytest.mark.parametrize(
    ("metadata_truth", "key", "code"),
    [(None, "truth", "sim.no_truth"), ("maybe", "truth", "sim.bad_truth")],
)
async def test_missing_or_bad_truth_abstains(
    metadata_truth: str | None, key: str, code: str
) -> None:
    judgement = await SimulatedValidator(seed=1)(make_candidate(1, metadata_truth, key))
    assert judgement.vote is Vote.ABSTAIN
    assert judgement.confidence == 0.0
    assert [r.code for r in judgement.reasons] == [code]


async def test_custom_truth_key() -> None:
    validator = SimulatedValidator(error_rate=0.0, truth_key="label", seed=1)
    assert (await validator(make_candidate(1, "reject", key="label"))).vote is Vote.REJECT
    assert (await validator(make_candidate(1, "reject"))).vote is Vote.ABSTAIN


async def test_latency_is_simulated_without_blocking() -> None:
    validator = SimulatedValidator(error_rate=0.0, latency_ms=100, seed=1)
    started = time.perf_counter()
    await asyncio.gather(*(validator(make_candidate(i)) for i in range(20)))
    elapsed = time.perf_counter() - started
    assert 0.09 <= elapsed < 1.0  # concurrent sleeps, not 20 x 100 ms


async def test_confidence_is_calibrated_to_the_error_rate() -> None:
    judgement = await SimulatedValidator(error_rate=0.25, seed=1)(make_candidate(1))
    assert judgement.confidence == pytest.approx(0.75)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": 1.5},
        {"error_rate": -0.1},
        {"error_rate": "0.1"},
        {"latency_ms": -1},
        {"red_team": "True"},
        {"truth_key": ""},
        {"reject_codes": ["ok", ""]},
    ],
)
def test_bad_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimulatedValidator(**kwargs)


def test_has_version() -> None:
    assert isinstance(SimulatedValidator.version, str)
