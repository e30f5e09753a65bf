"""Bad input beside the good load, each record remembered with what the tally must do with it.

Written in rounds (one round is the bad-input scenario's "fault"):

| kind | topic | expected |
|---|---|---|
| garbage-candidate, garbage-verdict | both | MALFORMED |
| truncated-candidate, truncated-verdict | both | MALFORMED (a valid record cut short) |
| unknown-schema | verdicts | MALFORMED (a fingerprint no schema has) |
| unknown-validator | verdicts | UNKNOWN_VALIDATOR (for a case of the load) |
| orphan-verdict | verdicts | UNKNOWN_ATTEMPT (its candidate never comes; after hold_ms) |
| oversized-candidate | candidates | TOO_LARGE (> max_candidate_bytes, < the broker's limit) |

and continuously, as the load's records go by:

| duplicate-verdict | verdicts | no dead letter: a re-sent copy of 20% of the load's verdicts |
| late-verdict | verdicts | no dead letter: a verdict for an attempt already decided |
| forged-* (four kinds) | verdicts | BAD_SIGNATURE, UNKNOWN_KEY, KEY_OUT_OF_WINDOW, REPLAYED |

The forged verdicts (see forged.py) are signed ones against 10% of the decided cases, under the
scenario's copy of the default policy with signatures optional (the load's stay unsigned).

Good records are built with Ratifier's codec and the Client, so only the intended flaw differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from ratifier.app.chaos.checker import InjectedRecord, SourceRef
from ratifier.app.chaos.forged import Forger
from ratifier.app.chaos.observe import INJECTED_HEADER, Observer
from ratifier.app.demo.generator import chance
from ratifier.app.demo.runner import DEMO_VALIDATORS
from ratifier.core.models import (
    DeadLetterReason,
    Decision,
    EscalationPacket,
    Verdict,
    Vote,
    now_ms,
)
from ratifier.core.polling import in_background
from ratifier.core.topics import TopicNames
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

DUPLICATE_SHARE = 0.20
LATE_SHARE = 0.05
FORGED_SHARE = 0.10  # of the decided cases, each forged against (four records, forged.py)
POLICY_VALIDATORS = tuple(v.validator_id for v in DEMO_VALIDATORS)  # the default policy's
UNKNOWN_VALIDATOR_ID = "chaos-unknown-validator"
# Expected for an oversized candidate. The reason is being added to DeadLetterReason; until it
# is there no tally can give it, and the check fails for those records (as it should).
TOO_LARGE = "TOO_LARGE"
TOO_LARGE_KNOWN = TOO_LARGE in DeadLetterReason.__members__

MALFORMED = DeadLetterReason.MALFORMED.value
UNKNOWN_VALIDATOR = DeadLetterReason.UNKNOWN_VALIDATOR.value
UNKNOWN_ATTEMPT = DeadLetterReason.UNKNOWN_ATTEMPT.value


def verdict_for(
    case_id: str, attempt: int, candidate_id: str, validator_id: str, vote: Vote = Vote.ACCEPT
) -> Verdict:
    return Verdict(
        case_id=case_id,
        attempt=attempt,
        candidate_id=candidate_id,
        validator_id=validator_id,
        validator_version="chaos-1",
        vote=vote,
        confidence=0.5,
        severity=None,
        reasons=(),
        latency_ms=1,
        produced_at_ms=now_ms(),
    )


def late_verdict(decision: Decision) -> Verdict:
    """A verdict for the attempt ``decision`` decided, from a validator it did not count if any.

    Such a verdict is recorded as late; from a validator it did count, it is a second opinion
    that counts once. Neither may be dead-lettered.
    """
    if isinstance(decision, EscalationPacket):
        last = decision.attempts[-1]
        candidate, voters = last.candidate, {v.validator_id for v in last.verdicts}
    else:
        candidate, voters = decision.candidate, {v.validator_id for v in decision.votes}
    silent = [v for v in POLICY_VALIDATORS if v not in voters]
    validator = silent[0] if silent else POLICY_VALIDATORS[0]
    return verdict_for(
        candidate.case_id, candidate.attempt, candidate.candidate_id, validator, Vote.REJECT
    )


@dataclass
class BadInput:
    """Writes bad records and remembers each one's place on its topic."""

    client: Client
    load_case_ids: Callable[[], Collection[str]]  # the load's cases so far
    injected: list[InjectedRecord] = field(default_factory=list)
    bad_case_ids: set[str] = field(default_factory=set)  # cases made of a bad candidate
    # Candidates resubmitted for finished cases (late-replay): the validators judge them too,
    # and their verdicts must be dead-lettered CASE_CLOSED like the candidates.
    closed_candidate_ids: set[str] = field(default_factory=set)
    send_failures: int = 0
    forger: Forger | None = None  # forged verdicts too, under the forger's signed policy
    _rng: random.Random = field(default_factory=lambda: random.Random(9))

    def __post_init__(self) -> None:
        self.names = TopicNames.from_settings(self.client.settings)
        self._producer = make_producer(self.client.settings, client_id="ratifier-chaos-bad-input")

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def write(
        self, kind: str, topic: str, key: bytes, value: bytes, expected: str | None
    ) -> None:
        headers = [(INJECTED_HEADER, kind.encode())]
        sending = self._producer.send_and_wait(topic, value, key=key, headers=headers)
        await self._remember(kind, topic, sending, expected)

    async def flood(
        self, kind: str, topic: str, key: bytes, count: int, expected: str
    ) -> set[SourceRef]:
        """``count`` random records under one key, sent together: back to back on one partition,
        as a broken producer writes them. Returns where they landed."""
        headers = [(INJECTED_HEADER, kind.encode())]
        sending = []
        for _ in range(count):
            try:
                value = self._rng.randbytes(64)
                sending.append(await self._producer.send(topic, value, key=key, headers=headers))
            except KafkaError as exc:
                self._not_written(kind, exc)
        first = len(self.injected)
        for future in sending:
            await self._remember(kind, topic, future, expected)
        return {record.source for record in self.injected[first:]}

    async def _remember(
        self, kind: str, topic: str, sending: Awaitable[RecordMetadata], expected: str | None
    ) -> None:
        try:
            meta = await sending
        except KafkaError as exc:
            self._not_written(kind, exc)
            return
        self.injected.append(
            InjectedRecord(kind, SourceRef(topic, meta.partition, meta.offset), expected)
        )

    def _not_written(self, kind: str, exc: KafkaError) -> None:
        # Not retried: a retry could write it twice, with one copy unaccounted for.
        self.send_failures += 1
        logger.warning("could not write %s: %r", kind, exc)

    async def round(self) -> str:
        """One of each kind of bad record; returns a note for the report."""
        names = self.names
        settings = self.client.settings
        garbage_key = f"chaos-garbage-{uuid.uuid4()}".encode()
        for topic, kind in (
            (names.candidates, "garbage-candidate"),
            (names.verdicts, "garbage-verdict"),
        ):
            await self.write(kind, topic, garbage_key, self._rng.randbytes(64), MALFORMED)

        sample = self.client.candidate("a candidate cut short", metadata={"truth": "accept"})
        whole = codec.encode(sample)
        await self.write(
            "truncated-candidate", names.candidates, sample.case_id.encode(), whole[:-7], MALFORMED
        )
        orphan = verdict_for(f"chaos-orphan-{uuid.uuid4()}", 1, str(uuid.uuid4()), "sim-a")
        whole = codec.encode(orphan)
        await self.write(
            "truncated-verdict", names.verdicts, orphan.case_id.encode(), whole[:-5], MALFORMED
        )
        unknown_schema = codec.MARKER + self._rng.randbytes(8) + whole[codec.HEADER_SIZE :]
        await self.write(
            "unknown-schema", names.verdicts, orphan.case_id.encode(), unknown_schema, MALFORMED
        )
        # The verdict whole, for an attempt whose candidate is never sent.
        await self.write(
            "orphan-verdict", names.verdicts, orphan.case_id.encode(), whole, UNKNOWN_ATTEMPT
        )

        cases = list(self.load_case_ids())
        if cases:  # the newest case of the load: its state is there, or soon will be
            stranger = verdict_for(cases[-1], 1, str(uuid.uuid4()), UNKNOWN_VALIDATOR_ID)
            await self.write(
                "unknown-validator",
                names.verdicts,
                stranger.case_id.encode(),
                codec.encode(stranger),
                UNKNOWN_VALIDATOR,
            )

        # Above the tally's limit by a little: a whole escalation of such attempts must still
        # fit the broker's record limit while no tally enforces the candidate limit.
        oversized = self.client.candidate(
            "x" * (settings.max_candidate_bytes + 1024), metadata={"truth": "accept"}
        )
        self.bad_case_ids.add(oversized.case_id)
        await self.write(
            "oversized-candidate",
            names.candidates,
            oversized.case_id.encode(),
            codec.encode(oversized),
            TOO_LARGE,
        )
        return "bad-input round"

    async def follow(self, observer: Observer) -> None:
        """Re-send some of the load's verdicts and send late ones, as the records go by."""
        await asyncio.gather(self._duplicates(observer), self._late(observer))

    async def _duplicates(self, observer: Observer) -> None:
        while True:
            record = await observer.verdicts.get()
            if record.key.decode(errors="replace") not in self.load_case_ids():
                continue
            if chance("duplicate", record.partition, record.offset) < DUPLICATE_SHARE:
                await self.write(
                    "duplicate-verdict", self.names.verdicts, record.key, record.value, None
                )

    async def _late(self, observer: Observer) -> None:
        while True:
            decision = await observer.decisions.get()
            if decision.case_id not in self.load_case_ids():
                continue
            if chance("late", decision.decision_id) < LATE_SHARE:
                verdict = late_verdict(decision)
                await self.write(
                    "late-verdict",
                    self.names.verdicts,
                    verdict.case_id.encode(),
                    codec.encode(verdict),
                    None,
                )
            if self.forger is not None and chance("forged", decision.decision_id) < FORGED_SHARE:
                await self._forge(self.forger, decision)

    async def _forge(self, forger: Forger, decision: Decision) -> None:
        """Forged verdicts against the candidate ``decision`` decided, in a validator's name."""
        if isinstance(decision, EscalationPacket):
            candidate = decision.attempts[-1].candidate
        else:
            candidate = decision.candidate
        pick = int(chance("forger", decision.decision_id) * len(POLICY_VALIDATORS))
        validator = POLICY_VALIDATORS[pick]
        for kind, verdict, expected in forger.forgeries(candidate, validator):
            key = verdict.case_id.encode()
            await self.write(kind, self.names.verdicts, key, codec.encode(verdict), expected)


@contextlib.asynccontextmanager
async def following(bad: BadInput, observer: Observer) -> AsyncIterator[None]:
    """Runs :meth:`BadInput.follow` in the background for the duration of the block."""
    async with in_background(bad.follow(observer)):
        yield
