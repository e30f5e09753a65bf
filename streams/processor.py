"""The tally's processing step: decode a record, apply the pure rules, route what they decide.

No faust here: the processor reads and writes a :class:`CaseStore` and returns the records to
publish, so the faust agent (``agents.py``) only feeds it and sends, and tests can drive it
directly. One instance serves every partition the worker owns; calls must not interleave
(the agent runs with concurrency 1 and the timer shares its event loop).

Within one call (a batch of input, or a tick) case states stay decoded: a case's candidate and
verdicts usually arrive in the same batch, and decoding and encoding its state once per batch
instead of once per record was the largest cost of the tally's own code. Everything is written
back to the store before the call returns, so between calls the store is the whole truth.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from ratifier.core.errors import WireFormatError
from ratifier.core.fastinit import fast_init
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    EscalationPacket,
    PassDecision,
    RetryRequest,
    Verdict,
    now_ms,
)
from ratifier.core.policy import Policy
from ratifier.core.signing import Signer
from ratifier.core.topics import TopicNames
from ratifier.io.consume import (
    InvalidRecord,
    PoisonGate,
    PoisonLimitExceeded,
    dead_letter_key,
)
from ratifier.io.keys import signer_from
from ratifier.schemas import codec
from ratifier.streams.config import TallyConfig
from ratifier.streams.learned_models import ReliabilityBook
from ratifier.streams.rules import tally
from ratifier.streams.rules.deadlines import PartitionDeadlines
from ratifier.streams.rules.decision_times import DecisionTimes
from ratifier.streams.rules.finished import (
    Finished,
    decode_marker,
    encode_marker,
    finished_by,
    marker_key,
)
from ratifier.streams.rules.limits import DEAD_LETTER_EXCERPT_BYTES, SizeLimits
from ratifier.streams.rules.state import CaseState, decode_state, encode_state
from ratifier.streams.store import HEADER_SIZE, CaseStore, entry_header, entry_state, pack_entry

logger = logging.getLogger(__name__)

# What the brake counts: input the tally cannot read (undecodable, a key that is not its case
# id, an unknown policy, a bug), the signs of a wrong deploy rather than of one bad producer.
# A rule's rejection (an unknown validator, a closed case, a wrong attempt) is input it read.
UNREADABLE = frozenset(
    {
        DeadLetterReason.MALFORMED,
        DeadLetterReason.PROCESSING_ERROR,
        DeadLetterReason.UNKNOWN_POLICY,
    }
)

# Finished-case markers forgotten per partition and tick at most (a tick every 0.5 s: 20 000/s).
MARKERS_EXPIRED_PER_TICK = 10_000


@fast_init
@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes


@fast_init
@dataclass(frozen=True, slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    now_ms: int | None = None  # the time the rules see for it (default: the processor's clock)


@dataclass(slots=True)
class _Working:
    """A case's decoded state during one call; ``dirty`` once it differs from the store's."""

    partition: int
    state: CaseState | None
    due_ms: int | None
    dirty: bool
    size: int  # an estimate of its stored size: exact when loaded, plus each record applied


@dataclass(slots=True)
class TallyStats:
    candidates: int = 0
    verdicts: int = 0
    deleted: int = 0  # cases whose state was removed (pruned) from the store
    late_verdicts: int = 0
    oversized_outputs: int = 0  # outputs of a tick that no record limit could take (logged)
    markers_expired: int = 0  # finished-case markers forgotten at the horizon
    rounds_opened: int = 0  # debate rounds after the first (RoundRequests published)
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    # Candidate produced -> decided, per policy and outcome (streams/decision_times.py).
    decision_times: DecisionTimes = field(default_factory=DecisionTimes)


class TallyProcessor:
    @classmethod
    def from_config(
        cls,
        config: TallyConfig,
        policies: Mapping[str, Policy],
        store: CaseStore,
        *,
        brake: bool = False,
    ) -> TallyProcessor:
        """The processor both engines run, configured from the worker's tally config.

        ``brake``: stop on a run of unreadable input (config.poison), raising
        PoisonLimitExceeded out of :meth:`handle_batch`; the engine then commits nothing more.
        """
        return cls(
            config.names,
            policies,
            store,
            config.rules,
            limits=config.limits,
            signer=signer_from(config.signing_key),
            gate=PoisonGate(config.poison) if brake else None,
        )

    def __init__(
        self,
        topics: TopicNames,
        policies: Mapping[str, Policy],
        store: CaseStore,
        settings: tally.TallySettings,
        *,
        limits: SizeLimits,
        clock: Callable[[], int] = now_ms,
        signer: Signer | None = None,  # signs every decision (docs/signing.md)
        gate: PoisonGate | None = None,  # the brake on unreadable input (io.consume.poison)
    ) -> None:
        self.topics = topics
        self.gate = gate
        self._unreadable = False  # the record in hand was dead-lettered as unreadable
        self.signer = signer
        self.limits = limits
        self.policies = policies
        self.store = store
        self.settings = settings
        self.clock = clock
        self.index = PartitionDeadlines()
        self.stats = TallyStats()
        # Learned voter weights of [reliability] learn = "online" policies (learned_models.py).
        self.learning = ReliabilityBook(store)
        self._working: dict[bytes, _Working] = {}
        # The inputs decoded in this call, with their message bodies: a decision holding them
        # copies those bytes instead of encoding each vote again (most of a decision's cost).
        self._bodies: codec.Bodies = {}
        self._candidates_topic = topics.candidates  # a property that formats: read it once
        self._rounds_topic = topics.rounds
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
        return self.handle_batch([InputRecord(topic, partition, offset, key, value)])

    def handle_batch(self, records: Iterable[InputRecord]) -> list[Outgoing]:
        """Process input records in order; their states reach the store once, at the end."""
        out: list[Outgoing] = []
        try:
            for record in records:
                now = self.clock() if record.now_ms is None else record.now_ms
                out += self._handle_safely(record, now)
        finally:
            self._write_back()
        return out

    def _handle_safely(self, record: InputRecord, now: int) -> list[Outgoing]:
        source = tally.SourceRef(record.topic, record.partition, record.offset)
        raw = record.value or b""
        self._unreadable = False
        try:
            out = self._handle(source, record.key, raw, now)
        except PoisonLimitExceeded:
            raise
        except Exception as exc:  # a bug must not stop the partition: park the record, loudly
            # The rules are pure and _apply moves the state last: the case is as it was before
            # this record, which alone is parked.
            logger.exception(
                "tally failed on %s[%d]@%d", source.topic, source.partition, source.offset
            )
            return [self._dead_letter(raw, source, DeadLetterReason.PROCESSING_ERROR, repr(exc))]
        if self.gate is not None and not self._unreadable:
            self.gate.ok()
        return out

    def _handle(
        self, source: tally.SourceRef, key: bytes | None, raw: bytes, now: int
    ) -> list[Outgoing]:
        expected: type[Candidate] | type[Verdict]
        expected = Candidate if source.topic == self._candidates_topic else Verdict
        limit = (
            self.limits.max_candidate_bytes
            if expected is Candidate
            else self.limits.max_verdict_bytes
        )
        if len(raw) > limit:
            setting = "RATIFIER_MAX_CANDIDATE_BYTES" if expected is Candidate else "the verdict"
            detail = f"{len(raw)} bytes, more than the limit of {limit} ({setting} limit)"
            return [self._too_large(raw, source, detail)]
        try:
            record = codec.decode_as(raw, expected, self._bodies)
        except WireFormatError as exc:
            return [self._dead_letter(raw, source, DeadLetterReason.MALFORMED, str(exc))]
        case_key = record.case_id.encode()
        if key != case_key:
            # A key other than the case id may put the record on another partition than its
            # case's other records, where this worker's state would never see them.
            detail = f"record key {key!r} is not its case id {record.case_id!r}"
            return [self._dead_letter(raw, source, DeadLetterReason.MALFORMED, detail)]
        state = self._state(case_key, source.partition)
        if state is None:
            # No state: a new case, or one finished and pruned. Its marker tells which.
            marker = self.store.get(marker_key(case_key), source.partition)
            if marker is not None:
                return [self._case_closed(raw, source, record.case_id, decode_marker(marker))]
        if isinstance(record, Candidate):
            self.stats.candidates += 1
            policy = self.policies.get(record.policy)
            if policy is None:
                detail = f"policy {record.policy!r} is not loaded (known: {sorted(self.policies)})"
                return [self._dead_letter(raw, source, DeadLetterReason.UNKNOWN_POLICY, detail)]
            policy = self.learning.effective(policy, source.partition)
            step = tally.on_candidate(state, record, policy, now, self.settings)
        else:
            self.stats.verdicts += 1
            case_policy = state.policy if state is not None else None
            policies = self.learning.policies(self.policies, case_policy, source.partition)
            step = tally.on_verdict(state, record, source, policies, now, self.settings)
        return self._apply(case_key, source.partition, step, raw, source)

    def tick(
        self, active_partitions: Collection[int], now_of: Callable[[int], int] | None = None
    ) -> list[Outgoing]:
        """Close windows, expire held verdicts and prune cases whose time has come.

        Each partition goes by its own time, ``now_of(partition)`` (default: the wall clock);
        partitions not active (revoked) are left for the next rebuild of the index.
        """
        out: list[Outgoing] = []
        try:
            for partition in active_partitions:
                now = self.clock() if now_of is None else now_of(partition)
                for key, _ in list(self.index.pop_due(partition, now)):
                    try:
                        state = self._state(key, partition)
                        if state is None:
                            continue
                        policies = self.learning.policies(self.policies, state.policy, partition)
                        step = tally.on_tick(state, policies, now, self.settings)
                        out.extend(self._apply(key, partition, step, None, None))
                    except Exception:
                        logger.exception("tally failed to tick case %r; retrying later", key)
                        self.index.schedule(key, partition, now + 1_000)
                self._expire_markers(partition, now)
        finally:
            self._write_back()
        return out

    def _expire_markers(self, partition: int, now: int) -> None:
        """Forget finished cases past the horizon, a bounded number per tick (each a tombstone
        in the changelog): a backlog of expiries spreads over ticks instead of stalling one."""
        horizon = self.settings.finished_horizon_ms
        if horizon is None:
            return
        kept_since = now - horizon + 1  # a marker is kept for exactly the horizon
        for key in self.store.expired_markers(partition, kept_since, MARKERS_EXPIRED_PER_TICK):
            self.store.delete(key, partition)
            self.stats.markers_expired += 1

    def rebuild_index(self, active_partitions: Collection[int]) -> None:
        """Refill the deadline index from the store, e.g. after recovery or a rebalance."""
        entries = []
        for key, entry in self.store.entries():
            partition, due_ms = entry_header(entry)
            if partition in active_partitions:
                entries.append((key, partition, due_ms))
        self.index.rebuild(entries)
        logger.info("deadline index rebuilt: %d open cases", len(self.index))

    # -- state -------------------------------------------------------------------------------

    def _state(self, case_key: bytes, partition: int) -> CaseState | None:
        working = self._working.get(case_key)
        if working is None:
            entry = self.store.get(case_key, partition)
            if entry is None:
                return None
            state = decode_state(entry_state(entry))
            _, due_ms = entry_header(entry)
            working = _Working(partition, state, due_ms, dirty=False, size=len(entry))
            self._working[case_key] = working
        return working.state

    def _write_back(self) -> None:
        """Encode each case changed in this call once, into the store; forget the rest."""
        self.learning.write_back()
        working, self._working = self._working, {}
        self._bodies = {}  # the call is over: let its inputs go
        for key, case in working.items():
            if not case.dirty:
                continue
            if case.state is None:
                self.store.delete(key, case.partition)
                self.stats.deleted += 1
            else:
                entry = pack_entry(case.partition, case.due_ms, encode_state(case.state))
                self.store.put(key, case.partition, entry)

    # -- outputs -----------------------------------------------------------------------------

    def _apply(
        self,
        case_key: bytes,
        partition: int,
        step: tally.Step,
        raw: bytes | None,
        source: tally.SourceRef | None,
    ) -> list[Outgoing]:
        # Every output is built before the state moves on, so a failure here (a bug) leaves the
        # case exactly as it was before this record, never decided without its decision.
        # Most records decide nothing and reject nothing: the rare parts are behind ifs.
        out: list[Outgoing] = []
        for decision in step.decisions:
            topic = self._decision_topics[type(decision)]
            if self.signer is not None:
                decision = self.signer.sign(decision)
            out.append(Outgoing(topic, case_key, codec.encode(decision, self._bodies)))
        for request in step.rounds:  # debate rounds opened: in the same transaction as the state
            out.append(Outgoing(self._rounds_topic, case_key, codec.encode(request, self._bodies)))
        size = self._size_after(case_key, step, raw)
        if raw is None or source is None:
            out = self._drop_oversized(out)
        elif size > self.limits.max_record_bytes or out:
            too_large = self._too_large_detail(out, size)
            if too_large is not None:
                return [self._too_large(raw, source, too_large)]
        for rejection in step.rejected:
            if rejection.source is None and raw is not None and source is not None:
                original, where = raw, source
            else:
                # A held record rejected later: re-encoding gives the same bytes (deterministic).
                original = codec.encode(rejection.record, self._bodies)
                where = rejection.source or tally.SourceRef("", -1, -1)
            closed_by = None
            if rejection.reason is DeadLetterReason.CASE_CLOSED:
                marker = self.store.get(marker_key(case_key), partition)
                closed_by = None if marker is None else decode_marker(marker)
            out.append(
                self._dead_letter(original, where, rejection.reason, rejection.detail, closed_by)
            )
        for decision in step.decisions:
            finished = finished_by(decision)
            if finished is not None:  # in the same transaction as the decision itself
                self.store.put(marker_key(case_key), partition, encode_marker(finished))
        if step.settled:
            self.learning.learn(partition, self.policies, step.settled)
        if step.changed:
            self._working[case_key] = _Working(partition, step.state, step.due_ms, True, size)
        self.index.schedule(case_key, partition, step.due_ms if step.state is not None else None)
        if step.decisions:
            for record in out[: len(step.decisions)]:
                self.stats.decisions[record.topic] += 1
            for decision in step.decisions:
                self.stats.decision_times.observe(decision)
        if step.late:
            self.stats.late_verdicts += len(step.late)
        if step.rounds:
            self.stats.rounds_opened += len(step.rounds)
        return out

    # -- size limits -------------------------------------------------------------------------

    def _size_after(self, case_key: bytes, step: tally.Step, raw: bytes | None) -> int:
        """The stored size of the case after ``step``: estimated, exact once it could matter.

        Encoding a state costs more than the rest of a record's handling, so it is done here
        only when the estimate (the size as loaded plus every record applied since) comes near
        the limit, which a case of ordinary records never does.
        """
        working = self._working.get(case_key)
        estimate = (0 if working is None else working.size) + len(raw or b"")
        if step.state is None or not step.changed:
            return estimate
        if estimate <= self.limits.max_record_bytes // 2:
            return estimate
        return HEADER_SIZE + len(encode_state(step.state))

    def _too_large_detail(self, out: list[Outgoing], state_size: int) -> str | None:
        limit = self.limits.max_record_bytes
        if state_size > limit:
            return f"the case's state would be {state_size} bytes, more than {limit}"
        for record in out:
            if len(record.value) > limit:
                size = len(record.value)
                return f"its decision for {record.topic} would be {size} bytes, more than {limit}"
        return None

    def _drop_oversized(self, out: list[Outgoing]) -> list[Outgoing]:
        """A tick's outputs that no producer could send: logged, so the partition goes on.

        The start-up check of every policy against the limits makes this unreachable unless
        the limits changed while cases were open.
        """
        kept = []
        for record in out:
            if len(record.value) > self.limits.max_record_bytes:
                self.stats.oversized_outputs += 1
                logger.error(
                    "dropped a %d-byte record for %s (case %r): over the %d-byte record limit",
                    len(record.value),
                    record.topic,
                    record.key,
                    self.limits.max_record_bytes,
                )
            else:
                kept.append(record)
        return kept

    def _too_large(self, raw: bytes, source: tally.SourceRef, detail: str) -> Outgoing:
        """A ``TOO_LARGE`` dead letter, with an excerpt of the record (the whole would not fit)."""
        excerpt = raw[:DEAD_LETTER_EXCERPT_BYTES]
        detail += (
            f"; the dead letter keeps its first {len(excerpt)} of {len(raw)} bytes, "
            f"sha256 {hashlib.sha256(raw).hexdigest()}"
        )
        return self._dead_letter(excerpt, source, DeadLetterReason.TOO_LARGE, detail)

    def _case_closed(
        self, raw: bytes, source: tally.SourceRef, case_id: str, finished: Finished
    ) -> Outgoing:
        detail = f"case {case_id} already has its final outcome"
        return self._dead_letter(raw, source, DeadLetterReason.CASE_CLOSED, detail, finished)

    def _dead_letter(
        self,
        raw: bytes,
        source: tally.SourceRef,
        reason: DeadLetterReason,
        detail: str,
        closed_by: Finished | None = None,
    ) -> Outgoing:
        if closed_by is not None:
            detail += (
                f" (final decision {closed_by.decision_id}: {closed_by.outcome} at attempt "
                f"{closed_by.attempt})"
            )
        if reason in UNREADABLE and self.gate is not None:
            self._unreadable = True
            where = f"{source.topic}[{source.partition}]@{source.offset}"
            self.gate.reject(where, InvalidRecord(reason, detail))  # raises past a brake limit
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
            closed_by=None if closed_by is None else closed_by.ref(),
        )
        return Outgoing(self.topics.deadletter, dead_letter_key(letter), codec.encode(letter))
