"""The tally's processing step: decode a record, apply the pure rules, route what they decide.

No faust here: the processor reads and writes a :class:`CaseStore` and returns the records to
publish, so the faust agent (``agents.py``) only feeds it and sends, and tests can drive it
directly. One instance serves every partition the worker owns; calls must not interleave
(the agent runs with concurrency 1 and the timer shares its event loop).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field

from ratifier.errors import WireFormatError
from ratifier.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    EscalationPacket,
    PassDecision,
    RetryRequest,
    Verdict,
    now_ms,
)
from ratifier.policy import Policy
from ratifier.schemas import codec
from ratifier.streams import tally
from ratifier.streams.deadlines import DeadlineIndex
from ratifier.streams.state import decode_state, encode_state
from ratifier.streams.store import CaseStore, entry_header, entry_state, pack_entry
from ratifier.topics import TopicNames

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class TallyStats:
    candidates: int = 0
    verdicts: int = 0
    late_verdicts: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)


class TallyProcessor:
    def __init__(
        self,
        topics: TopicNames,
        policies: Mapping[str, Policy],
        store: CaseStore,
        settings: tally.TallySettings,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.topics = topics
        self.policies = policies
        self.store = store
        self.settings = settings
        self.clock = clock
        self.index = DeadlineIndex()
        self.stats = TallyStats()
        self._decision_topics: dict[type, str] = {
            PassDecision: topics.passed,
            RetryRequest: topics.retry,
            EscalationPacket: topics.escalate,
        }

    # -- inputs ------------------------------------------------------------------------------

    def handle(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[Outgoing]:
        """Process one input record; never raises on bad input (that goes to the dead letters)."""
        source = tally.SourceRef(topic, partition, offset)
        raw = value or b""
        try:
            return self._handle(source, key, raw)
        except Exception as exc:  # a bug must not stop the partition: park the record, loudly
            logger.exception("tally failed on %s[%d]@%d", topic, partition, offset)
            return [self._dead_letter(raw, source, DeadLetterReason.PROCESSING_ERROR, repr(exc))]

    def _handle(self, source: tally.SourceRef, key: bytes | None, raw: bytes) -> list[Outgoing]:
        expected: type[Candidate] | type[Verdict]
        expected = Candidate if source.topic == self.topics.candidates else Verdict
        try:
            record = codec.decode_as(raw, expected)
        except WireFormatError as exc:
            return [self._dead_letter(raw, source, DeadLetterReason.MALFORMED, str(exc))]
        case_key = record.case_id.encode()
        if key != case_key:
            # A key other than the case id may put the record on another partition than its
            # case's other records, where this worker's state would never see them.
            detail = f"record key {key!r} is not its case id {record.case_id!r}"
            return [self._dead_letter(raw, source, DeadLetterReason.MALFORMED, detail)]
        now = self.clock()
        entry = self.store.get(case_key)
        state = None if entry is None else decode_state(entry_state(entry))
        if isinstance(record, Candidate):
            self.stats.candidates += 1
            policy = self.policies.get(record.policy)
            if policy is None:
                detail = f"policy {record.policy!r} is not loaded (known: {sorted(self.policies)})"
                return [self._dead_letter(raw, source, DeadLetterReason.UNKNOWN_POLICY, detail)]
            step = tally.on_candidate(state, record, policy, now, self.settings)
        else:
            self.stats.verdicts += 1
            step = tally.on_verdict(state, record, source, self.policies, now, self.settings)
        return self._apply(case_key, source.partition, step, raw, source)

    def tick(self, active_partitions: Container[int]) -> list[Outgoing]:
        """Close windows, expire held verdicts and prune cases whose time has come."""
        now = self.clock()
        out: list[Outgoing] = []
        for key, partition in list(self.index.pop_due(now)):
            if partition not in active_partitions:
                continue  # revoked: the new owner rebuilds its own index
            entry = self.store.get(key)
            if entry is None:
                continue
            try:
                step = tally.on_tick(
                    decode_state(entry_state(entry)), self.policies, now, self.settings
                )
                out.extend(self._apply(key, partition, step, None, None))
            except Exception:
                logger.exception("tally failed to tick case %r; retrying later", key)
                self.index.schedule(key, partition, now + 1_000)
        return out

    def rebuild_index(self, active_partitions: Container[int]) -> None:
        """Refill the deadline index from the store, e.g. after recovery or a rebalance."""
        entries = []
        for key, entry in self.store.entries():
            partition, due_ms = entry_header(entry)
            if partition in active_partitions:
                entries.append((key, partition, due_ms))
        self.index.rebuild(entries)
        logger.info("deadline index rebuilt: %d open cases", len(self.index))

    # -- outputs -----------------------------------------------------------------------------

    def _apply(
        self,
        case_key: bytes,
        partition: int,
        step: tally.Step,
        raw: bytes | None,
        source: tally.SourceRef | None,
    ) -> list[Outgoing]:
        if step.changed:
            if step.state is None:
                self.store.delete(case_key, partition)
            else:
                entry = pack_entry(partition, step.due_ms, encode_state(step.state))
                self.store.put(case_key, partition, entry)
        self.index.schedule(case_key, partition, step.due_ms if step.state is not None else None)
        out: list[Outgoing] = []
        for decision in step.decisions:
            topic = self._decision_topics[type(decision)]
            self.stats.decisions[topic] += 1
            out.append(Outgoing(topic, case_key, codec.encode(decision)))
        for rejection in step.rejected:
            if rejection.source is None and raw is not None and source is not None:
                original, where = raw, source
            else:
                # A held record rejected later: re-encoding gives the same bytes (deterministic).
                original = codec.encode(rejection.record)
                where = rejection.source or tally.SourceRef("", -1, -1)
            out.append(self._dead_letter(original, where, rejection.reason, rejection.detail))
        if step.late:
            self.stats.late_verdicts += len(step.late)
        return out

    def _dead_letter(
        self, raw: bytes, source: tally.SourceRef, reason: DeadLetterReason, detail: str
    ) -> Outgoing:
        self.stats.dead_letters[reason.value] += 1
        logger.warning(
            "dead letter %s from %s[%d]@%d: %s",
            reason.value,
            source.topic,
            source.partition,
            source.offset,
            detail,
        )
        letter = DeadLetter(
            original=raw,
            source_topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            reason=reason,
            detail=detail,
            dead_at_ms=self.clock(),
        )
        key = f"{source.topic}:{source.partition}:{source.offset}".encode()
        return Outgoing(self.topics.deadletter, key, codec.encode(letter))
