"""Wires the tally processor into a faust app: the table, the agent, the deadline timer.

The agent consumes candidates and verdicts (co-partitioned by case id) with concurrency 1 —
faust may commit past an in-flight message with more (faust #606) — and the timer closes due
windows itself, since faust's windowed tables never close windows restored from a changelog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faust

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.policy import Policy
from ratifier.core.topics import TALLY_TABLE, TopicNames
from ratifier.io.metrics import serve_metrics
from ratifier.io.readiness import ReadinessFile
from ratifier.streams.config import TallyConfig
from ratifier.streams.engines.faust.app import input_topic
from ratifier.streams.heap import HeapTrimmer, glibc_malloc_trim
from ratifier.streams.metrics import tally_observability
from ratifier.streams.processor import InputRecord, Outgoing, TallyProcessor
from ratifier.streams.rules.clock import PartitionClocks
from ratifier.streams.rules.finished import is_marker_key, marker_decided_at
from ratifier.streams.store import entry_header, entry_state, pack_entry

logger = logging.getLogger(__name__)

ENGINE = "faust"

# A batch is handed over when this many events are buffered, or every BATCH_WAIT_S with what
# is buffered: the wait bounds the latency a quiet stream adds (but take_events wakes that often
# even when idle, ~7 % of a core at 2 ms), the size bounds the work per batch.
BATCH_MAX = 500
BATCH_WAIT_S = 0.002


@dataclass(frozen=True, slots=True)
class FaustTallyView:
    """The faust tally's parts a metrics scrape reads (a :class:`TallyView`)."""

    processor: TallyProcessor
    names: TopicNames
    store: FaustTableStore
    readiness: ReadinessFile


class FaustTableStore:
    """A :class:`~ratifier.streams.store.CaseStore` over a faust table.

    Writes go to the table's store and its changelog with an explicit partition, which is what
    lets the timer (outside any stream event) update cases; faust's ``table[key] = v`` cannot.

    Changelog writes are deferred until :meth:`flush`: a case usually changes several times in
    one batch of input (a candidate and its verdicts arrive together), and only its last state
    needs to reach the changelog. The caller must flush before the batch's offsets can be
    committed (the agent does so before it acks the batch), or a crash could lose state.
    """

    def __init__(self, table: faust.Table, headers: list[tuple[str, bytes]]) -> None:
        self.table = table
        self.headers = headers
        self._dirty: dict[bytes, tuple[int, bytes | None]] = {}
        # Finished-case markers by partition, oldest first, for expiry: kept in memory (this
        # adapter is for small deployments; the transactional engine keeps them on disk).
        self._markers: dict[int, dict[bytes, int]] = {}

    def get(self, key: bytes, partition: int) -> bytes | None:
        value: bytes | None = self.table.data.get(key)
        if value is not None and is_marker_key(key):
            return entry_state(value)  # stored with an entry header, for its partition
        return value

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        if is_marker_key(key):
            self._markers.setdefault(partition, {})[key] = marker_decided_at(entry)
            entry = pack_entry(partition, None, entry)
        self.table.data[key] = entry
        self._dirty[key] = (partition, entry)

    def delete(self, key: bytes, partition: int) -> None:
        if is_marker_key(key):
            self._markers.get(partition, {}).pop(key, None)
        self.table.data.pop(key, None)
        self._dirty[key] = (partition, None)

    def expired_markers(self, partition: int, before_ms: int, limit: int) -> list[bytes]:
        expired: list[bytes] = []
        for key, decided_at_ms in self._markers.get(partition, {}).items():
            if len(expired) >= limit or decided_at_ms >= before_ms:
                break
            expired.append(key)
        return expired

    def index_markers(self) -> None:
        """Rebuild the markers' expiry order from the table (after a recovery)."""
        found = sorted(
            (marker_decided_at(entry_state(entry)), entry_header(entry)[0], key)
            for key, entry in self.table.data.items()
            if is_marker_key(key)
        )
        self._markers = {}
        for decided_at_ms, partition, key in found:
            self._markers.setdefault(partition, {})[key] = decided_at_ms

    async def flush(self) -> None:
        """Send the latest state of every case changed since the last flush to the changelog.

        Straight to the producer, not through ``Table.send_changelog``: that goes through faust's
        ProducerBuffer, a queue and a task per record, which the profile showed as the tally's
        largest single cost. Delivery is still awaited before any offset commit, because faust
        flushes the producer first. What is skipped is the sent-offset callback, which only a
        RocksDB store uses (to resume recovery): with one, recovery would re-read more changelog.
        """
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        producer = self.table.app.producer
        topic = self.table.changelog_topic.get_topic_name()
        for key, (partition, entry) in dirty.items():
            await producer.send(topic, key, entry, partition, None, self.headers)

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter([item for item in self.table.data.items() if not is_marker_key(item[0])])

    def __len__(self) -> int:
        return len(self.table.data) - self.markers()

    def markers(self) -> int:
        return sum(len(keys) for keys in self._markers.values())


class FaustTally:
    """The tally in a faust app: a table of case states, an agent feeding the processor batches
    of input, and a timer ticking it; each partition's time from how far its inputs were read.

    Built once per app by :func:`install_tally`; the agent, the timer and the recovery callback
    are its methods, registered with faust in :meth:`_register`.
    """

    def __init__(self, app: faust.App, settings: Settings, policies: dict[str, Policy]) -> None:
        self.app = app
        self.settings = settings
        self.names = TopicNames.from_settings(settings)
        table = app.Table(
            TALLY_TABLE,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            help="Voting windows and attempt history per case (header + encoded CaseState).",
        )
        self.headers = [
            ("ratifier-worker", settings.worker_id.encode()),
            ("ratifier-engine", ENGINE.encode()),
        ]
        self.readiness = ReadinessFile(settings, ENGINE, self.names.tally_app_id)
        self.readiness.update(ready=False, partitions=())
        self.store = FaustTableStore(table, self.headers)
        config = TallyConfig.from_settings(settings)
        self.processor = TallyProcessor.from_config(config, policies, self.store)
        # Each partition's time is how far its inputs have been read (see clock.py), so a
        # backlog does not close windows whose verdicts are still waiting in Kafka.
        self.clocks = PartitionClocks((self.names.candidates, self.names.verdicts))
        self._trimmer = HeapTrimmer(glibc_malloc_trim())
        self._recovered = False
        self._endpoint: asyncio.Task[None] | None = None  # started once, after the first recovery
        self._register(table)

    def _register(self, table: faust.Table) -> None:
        self.app.agent(input_topic(self.app, self.settings), concurrency=1, name="tally")(
            self.consume
        )
        table.on_recover(self.on_recovered)
        self.app.timer(interval=self.settings.tick_interval_s, name="tally-deadlines")(self.tick)

    def active_partitions(self) -> set[int]:
        assignment = self.app.consumer.assignment()
        return {tp.partition for tp in assignment if tp.topic == self.names.candidates}

    async def consume(self, stream: faust.StreamT[Any]) -> None:
        """The agent: batches, so a case's several changes in one batch cost one changelog write.

        take_events acks a batch only after this body is done with it, i.e. after the flush
        below queued its changelog writes; faust flushes the producer before it commits offsets,
        so an input is never committed before the state it made.
        """
        clocks = self.clocks
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WAIT_S):
            records = []
            for event in events:
                m = event.message
                stamped = int(m.timestamp * 1000)
                clocks.observe(m.topic, m.partition, stamped)
                now = clocks.at(m.partition, stamped)
                records.append(InputRecord(m.topic, m.partition, m.offset, m.key, m.value, now))
            out = self.processor.handle_batch(records)
            await self.store.flush()
            if out:
                await self._publish(out)

    async def on_recovered(self) -> None:
        """After every table recovery: the markers' expiry order and the deadlines rebuilt."""
        partitions = self.active_partitions()
        self.store.index_markers()
        self.processor.rebuild_index(partitions)
        self._recovered = True
        self.readiness.update(ready=True, partitions=partitions)
        if self.settings.metrics_port and self._endpoint is None:
            self._endpoint = asyncio.create_task(self._serve_metrics())

    async def tick(self) -> None:
        """The timer: close due windows, expire held verdicts, prune (once recovered)."""
        if not self._recovered:
            return
        out = self.processor.tick(self.active_partitions(), self.clocks.now)
        await self.store.flush()
        if out:
            await self._publish(out)
        self._trimmer.maybe_trim(self.processor.stats.deleted)

    async def _publish(self, records: list[Outgoing]) -> None:
        producer = self.app.producer
        for record in records:
            # Not awaiting delivery here: faust flushes the producer before each offset commit,
            # so an input is never committed before what it caused is on the broker.
            await producer.send(record.topic, record.key, record.value, None, None, self.headers)

    async def _serve_metrics(self) -> None:
        # /metrics, /healthz, /readyz on RATIFIER_METRICS_PORT for the worker's lifetime. No
        # consumer lag: faust's consumer is not aiokafka's. Not a faust @app.task: with one
        # that never returns, a tally killed and restarted lost decisions (chaos tally-kill).
        view = FaustTallyView(self.processor, self.names, self.store, self.readiness)
        async with serve_metrics(self.settings, tally_observability(view)):
            await asyncio.Event().wait()


def install_tally(app: faust.App, settings: Settings, policies: dict[str, Policy]) -> FaustTally:
    """Add the tally's table, agent and timer to ``app``."""
    debating = sorted(name for name, policy in policies.items() if policy.debate is not None)
    if debating:
        # A round request must leave with the state change that opens its round (one
        # transaction); this adapter publishes at least once, apart from its changelog.
        raise ConfigError(
            f"policies {', '.join(debating)} have [debate]: debate rounds need the "
            f"transactional tally engine (RATIFIER_TALLY_ENGINE=transactional, the default), "
            f"not the faust adapter (docs/debate.md)"
        )
    return FaustTally(app, settings, policies)
