"""A validator that knows the answer: for demos, benchmarks and end-to-end tests.

The producer (or the demo generator) writes the ground truth into ``candidate.metadata`` under
``truth_key`` as ``"accept"`` or ``"reject"``; the simulated validator votes it correctly with
probability ``1 - error_rate``. Its randomness is a hash of ``(seed, candidate_id)``, never a
shared random stream, so the vote on a candidate does not depend on which replica of the group
judges it, in which order, or how often (replays after a rebalance give the same vote).
"""

from __future__ import annotations

import asyncio
import hashlib
import random

from ratifier.core.errors import ConfigError
from ratifier.core.models import Candidate, Judgement, Reason, Severity, Vote
from ratifier.validators.runtime import Peers

__all__ = ["SimulatedValidator"]

_TRUTHS = {"accept": Vote.ACCEPT, "reject": Vote.REJECT}
_DEFAULT_CODES = ("sim.factual_error",)
_DEFAULT_RED_TEAM_CODES = ("sim.safety_violation",)


def _uniform_and_pick(seed: int | str, candidate_id: str) -> tuple[float, int]:
    # blake2b, not hash(): str hashes change per process (PYTHONHASHSEED), replicas must agree.
    digest = hashlib.blake2b(f"{seed}\x1f{candidate_id}".encode(), digest_size=16).digest()
    uniform = (int.from_bytes(digest[:8], "big") >> 11) * 2.0**-53  # 53 bits: exact in [0, 1)
    return uniform, int.from_bytes(digest[8:], "big")


class SimulatedValidator:
    """Vote the ground truth from ``candidate.metadata[truth_key]``, wrong with ``error_rate``.

    A ``red_team`` instance rejects with severity CRITICAL when it finds (or imagines) a problem,
    so a policy can treat it as a veto; ordinary instances reject with MAJOR. The reason code of a
    rejection is drawn from ``reject_codes``. Without a seed the votes are not reproducible.
    """

    version = "1.0.0"

    def __init__(
        self,
        error_rate: float = 0.1,
        truth_key: str = "truth",
        latency_ms: float = 0.0,
        seed: int | str | None = None,
        red_team: bool = False,
        reject_codes: str | list[str] | None = None,
        herding: float = 0.0,
    ) -> None:
        """``herding``: in a debate round (docs/debate.md), the probability of copying the
        majority vote shown from the previous round instead of judging again (0: independent;
        each round is then a fresh draw)."""
        if (
            isinstance(error_rate, bool)
            or not isinstance(error_rate, int | float)
            or not 0.0 <= error_rate <= 1.0
        ):
            raise ConfigError(f"error_rate must be a number in [0, 1], got {error_rate!r}")
        if (
            isinstance(latency_ms, bool)
            or not isinstance(latency_ms, int | float)
            or latency_ms < 0
        ):
            raise ConfigError(f"latency_ms must be a non-negative number, got {latency_ms!r}")
        if (
            isinstance(herding, bool)
            or not isinstance(herding, int | float)
            or not 0 <= herding <= 1
        ):
            raise ConfigError(f"herding must be a number in [0, 1], got {herding!r}")
        if not isinstance(red_team, bool):
            raise ConfigError(f"red_team must be true or false, got {red_team!r}")
        if not truth_key:
            raise ConfigError("truth_key must not be empty")
        if isinstance(reject_codes, str):
            reject_codes = [reject_codes]
        codes = tuple(reject_codes or (_DEFAULT_RED_TEAM_CODES if red_team else _DEFAULT_CODES))
        if not all(isinstance(c, str) and c for c in codes):
            raise ConfigError(f"reject_codes must be non-empty strings, got {reject_codes!r}")
        self.error_rate = float(error_rate)
        self.truth_key = truth_key
        self.latency_s = float(latency_ms) / 1000.0
        self.seed = seed
        self.red_team = red_team
        self.reject_codes = codes
        self.herding = float(herding)
        self._rng = random.Random() if seed is None else None

    def __repr__(self) -> str:
        return (
            f"SimulatedValidator(error_rate={self.error_rate}, seed={self.seed!r}, "
            f"red_team={self.red_team}, herding={self.herding})"
        )

    def _draw(self, candidate_id: str) -> tuple[float, int]:
        if self._rng is not None:
            return self._rng.random(), self._rng.getrandbits(64)
        assert self.seed is not None
        return _uniform_and_pick(self.seed, candidate_id)

    def decide(self, candidate: Candidate, peers: Peers | None = None) -> Judgement:
        """The judgement, without the simulated latency; in debate round k (``peers`` given) a
        fresh draw of its own, or with probability ``herding`` the majority it was shown."""
        raw = candidate.metadata.get(self.truth_key)
        if raw is None:
            return Judgement(
                vote=Vote.ABSTAIN,
                confidence=0.0,
                reasons=(Reason("sim.no_truth", f"metadata has no {self.truth_key!r} key"),),
            )
        truth = _TRUTHS.get(raw.strip().lower())
        if truth is None:
            message = f"metadata {self.truth_key!r} is {raw!r}, expected 'accept' or 'reject'"
            return Judgement(
                vote=Vote.ABSTAIN, confidence=0.0, reasons=(Reason("sim.bad_truth", message),)
            )
        key = candidate.candidate_id if peers is None else f"{candidate.candidate_id}#{peers.round}"
        uniform, pick = self._draw(key)
        wrong = uniform < self.error_rate
        vote = truth if not wrong else (Vote.REJECT if truth is Vote.ACCEPT else Vote.ACCEPT)
        if peers is not None and self.herding > 0 and self._draw(f"{key}#herd")[0] < self.herding:
            vote = _majority(peers) or vote
        # Calibrated: the simulated validator is right this often.
        confidence = 1.0 - self.error_rate
        if vote is Vote.ACCEPT:
            return Judgement(vote=Vote.ACCEPT, confidence=confidence)
        code = self.reject_codes[pick % len(self.reject_codes)]
        label = code.rsplit(".", 1)[-1].replace("_", " ")
        message = f"simulated {label} in case {candidate.case_id} (attempt {candidate.attempt})"
        return Judgement(
            vote=Vote.REJECT,
            confidence=confidence,
            severity=Severity.CRITICAL if self.red_team else Severity.MAJOR,
            reasons=(Reason(code, message),),
        )

    async def __call__(self, candidate: Candidate, peers: Peers | None = None) -> Judgement:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return self.decide(candidate, peers)


def _majority(peers: Peers) -> Vote | None:
    """The side more of the shown verdicts took (own included); None on a tie."""
    accepts = sum(1 for v in peers.verdicts if v.vote is Vote.ACCEPT)
    rejects = sum(1 for v in peers.verdicts if v.vote is Vote.REJECT)
    if accepts == rejects:
        return None
    return Vote.ACCEPT if accepts > rejects else Vote.REJECT
