"""What a validator is shown in a debate round, and the simulated validators that herd."""

from __future__ import annotations

from pathlib import Path

from aiokafka import ConsumerRecord

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Judgement, PeerVerdict, RoundRequest, Vote
from ratifier.schemas import codec
from ratifier.validators.builtin.simulated import SimulatedValidator
from ratifier.validators.runtime import (
    CandidateCache,
    Peers,
    ValidatorWorker,
    judge_safely,
    peer_verdicts,
    takes_peers,
)


def request(anonymise: bool) -> RoundRequest:
    peers = tuple(
        PeerVerdict(v, vote, 0.8, None, ())
        for v, vote in (("a", Vote.ACCEPT), ("b", Vote.REJECT), ("c", Vote.REJECT))
    )
    return RoundRequest("r", "case", 1, "cand", "p", 2, peers, anonymise, 0, 30_000)


def candidate(truth: str = "accept", candidate_id: str = "cand") -> Candidate:
    return Candidate(
        "case", 1, candidate_id, "p", "g", "q", "x" * 100, "gen", 0, metadata={"truth": truth}
    )


def test_a_validator_sees_its_own_verdict_as_you_and_its_peers_anonymised_when_asked() -> None:
    shown = peer_verdicts(request(anonymise=True), "b")
    assert shown.round == 2
    assert [p.peer for p in shown.verdicts] == ["peer 1", "you", "peer 2"]
    assert [p.vote for p in shown.verdicts] == [Vote.ACCEPT, Vote.REJECT, Vote.REJECT]
    assert [p.peer for p in peer_verdicts(request(anonymise=False), "b").verdicts] == [
        "a",
        "you",
        "c",
    ]


async def test_judges_without_peers_keep_working_and_debaters_get_them() -> None:
    seen: list[Peers | None] = []

    async def old_judge(c: Candidate) -> Judgement:
        return Judgement(Vote.ACCEPT)

    async def debater(c: Candidate, peers: Peers | None = None) -> Judgement:
        seen.append(peers)
        return Judgement(Vote.REJECT)

    assert not takes_peers(old_judge)
    assert takes_peers(debater)
    assert takes_peers(SimulatedValidator())
    peers = peer_verdicts(request(True), "a")
    assert (await judge_safely(old_judge, candidate(), 1.0)).vote is Vote.ACCEPT
    assert (await judge_safely(debater, candidate(), 1.0, peers)).vote is Vote.REJECT
    assert seen == [peers]


def test_the_candidate_cache_is_bounded_by_count_and_size() -> None:
    cache = CandidateCache(entries=2, size=10_000)
    for n in range(3):
        cache.put(candidate(candidate_id=f"c{n}"))
    assert cache.get("c0") is None
    assert cache.get("c2") is not None
    small = CandidateCache(entries=100, size=800)  # two of 357 B (content, query, 256)
    for n in range(3):
        small.put(candidate(candidate_id=f"c{n}"))
    assert [small.get(f"c{n}") is not None for n in range(3)] == [False, True, True]


def _shown(vote: Vote) -> Peers:
    return Peers(2, tuple(PeerVerdict(f"peer {n}", vote, 0.8, None, ()) for n in range(5)))


def test_a_herding_validator_copies_the_majority_it_was_shown() -> None:
    never = SimulatedValidator(error_rate=0.0, seed=1, herding=0.0)
    always = SimulatedValidator(error_rate=0.0, seed=1, herding=1.0)
    truth_accept = candidate("accept")
    assert never.decide(truth_accept, _shown(Vote.REJECT)).vote is Vote.ACCEPT
    assert always.decide(truth_accept, _shown(Vote.REJECT)).vote is Vote.REJECT
    assert always.decide(truth_accept).vote is Vote.ACCEPT  # round 1: nothing to copy


def test_herding_at_h_copies_about_h_of_the_time_and_rounds_are_fresh_draws() -> None:
    herd = SimulatedValidator(error_rate=0.0, seed=7, herding=0.3)
    copied = sum(
        herd.decide(candidate("accept", f"c{n}"), _shown(Vote.REJECT)).vote is Vote.REJECT
        for n in range(4000)
    )
    assert 0.27 < copied / 4000 < 0.33
    noisy = SimulatedValidator(error_rate=0.5, seed=7)
    first = [noisy.decide(candidate("accept", f"c{n}")).vote for n in range(200)]
    second = [noisy.decide(candidate("accept", f"c{n}"), Peers(2, ())).vote for n in range(200)]
    assert first != second  # a round is a fresh draw, not the round-1 vote again
    again = [noisy.decide(candidate("accept", f"c{n}"), Peers(2, ())).vote for n in range(200)]
    assert second == again  # but the same round replays the same vote


async def test_a_validator_keeps_only_the_debated_candidates_it_judges(tmp_path: Path) -> None:
    """The round cache holds candidates for this validator's later rounds: one of a debate
    policy that does not list it never has a round for it, so it is not kept."""
    (tmp_path / "p.toml").write_text(
        'name = "p"\nversion = "1"\nmax_attempts = 1\nwindow_seconds = 30\n'
        "[threshold]\naccepts = 1\n[debate]\nmin_rounds = 2\nmax_rounds = 3\n"
        'supermajority = 0.75\n[[validators]]\nid = "a"\n'
    )

    async def judge(c: Candidate) -> Judgement:
        raise AssertionError("a validator the policy does not list is never called")

    worker = ValidatorWorker(Settings(policy_dir=tmp_path), "b", judge)
    try:
        record = ConsumerRecord(
            "ratifier.candidates", 0, 7, 0, 0, b"case", codec.encode(candidate()), None, 4, 100, ()
        )
        await worker._handle(record)
        assert worker.not_listed == 1
        assert worker.candidates.get("cand") is None
    finally:
        await worker.stop()  # never started: closes the clients it made
