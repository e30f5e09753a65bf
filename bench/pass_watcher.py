"""The one rule every baseline relay applies (bench/relay.py, bench/transactional_relay.py): a
bench case passes once its candidate, three accepting simulated voters and the red team are in,
the votes that make the default policy pass it. Each record is decoded, as the tally does."""

from __future__ import annotations

from ratifier.core.models import Candidate, Verdict, Vote
from ratifier.schemas import codec

RED_TEAM = "redteam"


class _Case:
    __slots__ = ("accepts", "candidate", "red_team")

    def __init__(self) -> None:
        self.candidate: bytes | None = None
        self.accepts = 0
        self.red_team = False


class PassWatcher:
    """Decodes each record and says when a bench case has the votes the default policy needs."""

    def __init__(self) -> None:
        self.open_cases: dict[str, _Case] = {}
        self.done: set[str] = set()

    def feed(self, value: bytes | None) -> bytes | None:
        """The candidate's bytes once this record completes its case's pass, else None."""
        raw = value or b""
        decoded = codec.decode(raw)
        if not isinstance(decoded, (Candidate, Verdict)):
            return None
        case_id = decoded.case_id
        if case_id in self.done:
            return None
        case = self.open_cases.get(case_id)
        if case is None:
            case = self.open_cases[case_id] = _Case()
        if isinstance(decoded, Candidate):
            case.candidate = raw
        elif decoded.validator_id == RED_TEAM:
            case.red_team = True
        elif decoded.vote is Vote.ACCEPT:
            case.accepts += 1
        if case.candidate is None or not case.red_team or case.accepts < 3:
            return None
        del self.open_cases[case_id]
        self.done.add(case_id)
        return case.candidate
