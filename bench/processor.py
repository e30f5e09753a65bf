"""``bench/run.py processor``: the tally's processor alone, offline (no Kafka), in µs per record.

The input is the throughput benchmark's own: K cases built by ``harness.candidate`` and
``harness.verdict`` (one candidate, five verdicts each), encoded by the wire codec. It is fed to
:meth:`TallyProcessor.handle_batch` the way the transactional engine feeds it
(``streams/transactional/engine.py``):

* cases are spread over the partitions, each partition its own candidates and verdicts streams
  with offsets and timestamps as the loader's producer would give them;
* each poll takes, per partition, up to ``MAX_PARTITION_FETCH_BYTES`` of each topic (so
  candidates, the larger records, run ahead of their verdicts, and a later batch finds its
  cases' states in the store, as in the engine), merged by timestamp into one batch;
* records of one millisecond tie; the engine lists the candidates topic first, and
  ``heapq.merge`` keeps that order among ties, so a verdict is held only when its candidate
  has not been fetched yet.

Only ``handle_batch`` is timed (with the store hand-off the engine makes after it), in CPU time
of this process; building the batches is not. Each run starts from an empty store; the figure
is the median over the runs.
``--save`` writes the figures as JSON and ``--against`` prints a before/after comparison with
such a file, e.g. one saved on the commit before a change.
"""

from __future__ import annotations

import gc
import heapq
import platform
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from bench import harness
from ratifier.core.config import Settings
from ratifier.core.policy import Policy, load_policies
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import MAX_PARTITION_FETCH_BYTES
from ratifier.schemas import codec
from ratifier.streams.local_state.memory import MemoryBackend
from ratifier.streams.local_state.partition import PartitionStore
from ratifier.streams.local_state.partitioned import PartitionedCaseStore
from ratifier.streams.processor import InputRecord, Outgoing, TallyProcessor
from ratifier.streams.rules.limits import SizeLimits
from ratifier.streams.rules.tally import TallySettings

T0 = 1_800_000_000_000
# The loader's producer writes ~30 000 records a second: a few cases share each millisecond.
RECORDS_PER_MS = 32
PREFIX = "bench-processor"


@dataclass(frozen=True, slots=True)
class _Message:
    """What the engine gets from aiokafka for one record, as far as it reads it."""

    topic: str
    offset: int
    timestamp: int
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Result:
    cases: int
    records: int
    batches: int
    runs: int
    us_per_record: float  # median of the runs
    us_per_record_runs: tuple[float, ...]
    commit: str
    python: str


_by_timestamp = attrgetter("timestamp")


def build_streams(cases: int, partitions: int) -> dict[int, tuple[list[_Message], list[_Message]]]:
    """Per partition, its (candidates, verdicts) streams, in the order the loader writes them."""
    topics = TopicNames(PREFIX)
    streams: dict[int, tuple[list[_Message], list[_Message]]] = {
        p: ([], []) for p in range(partitions)
    }
    sent = 0
    for i in range(cases):
        candidate = harness.candidate(f"c{i:08d}", produced_at_ms=T0)
        key = candidate.case_id.encode()
        candidates, verdicts = streams[i % partitions]  # any spread will do: cases are alike
        value = codec.encode(candidate)
        candidates.append(_Message(topics.candidates, len(candidates), _ts(sent), key, value))
        sent += 1
        for validator_id in harness.VALIDATORS:
            value = codec.encode(harness.verdict(candidate, validator_id))
            verdicts.append(_Message(topics.verdicts, len(verdicts), _ts(sent), key, value))
            sent += 1
    return streams


def _ts(sent: int) -> int:
    return T0 + sent // RECORDS_PER_MS


def build_batches(cases: int, partitions: int) -> list[list[InputRecord]]:
    """The batches the engine would hand to ``handle_batch``, poll by poll."""
    streams = build_streams(cases, partitions)
    fetched = {p: (_fetches(c), _fetches(v)) for p, (c, v) in streams.items()}
    batches: list[list[InputRecord]] = []
    while fetched:
        for partition, (candidates, verdicts) in list(fetched.items()):
            polled = [chunk for chunk in (next(candidates, []), next(verdicts, [])) if chunk]
            if not polled:
                del fetched[partition]
                continue
            merged = heapq.merge(*polled, key=_by_timestamp)
            batches.append(
                [
                    InputRecord(m.topic, partition, m.offset, m.key, m.value, m.timestamp)
                    for m in merged
                ]
            )
    return batches


def _fetches(stream: list[_Message]) -> Iterator[list[_Message]]:
    """``stream`` in the chunks one fetch returns: at most the fetch size of record values."""
    chunk: list[_Message] = []
    size = 0
    for message in stream:
        if chunk and size + len(message.value) > MAX_PARTITION_FETCH_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += len(message.value)
    if chunk:
        yield chunk


def new_processor(
    partitions: int, policies: Mapping[str, Policy] | None = None
) -> tuple[TallyProcessor, dict[int, PartitionStore]]:
    """A processor on empty stores, one per partition as the engine's tasks own them, under
    ``policies`` (None: the built-in ones)."""
    settings = Settings()
    backend = MemoryBackend()
    store = PartitionedCaseStore()
    stores = {p: PartitionStore(p, backend.open(p)) for p in range(partitions)}
    for partition_store in stores.values():
        store.attach(partition_store)
    processor = TallyProcessor(
        TopicNames(PREFIX),
        load_policies() if policies is None else policies,
        store,
        TallySettings(
            hold_ms=settings.hold_ms,
            retention_ms=settings.retention_ms,
            retry_wait_ms=settings.retry_wait_ms,
        ),
        clock=lambda: T0,
        limits=SizeLimits.from_settings(settings),
    )
    return processor, stores


def run_once(
    batches: list[list[InputRecord]],
    partitions: int,
    policies: Mapping[str, Policy] | None = None,
    outputs: list[Outgoing] | None = None,
) -> tuple[float, TallyProcessor]:
    """CPU seconds ``handle_batch`` took over every batch, on a fresh processor and store.

    CPU time, not wall time: the machine is shared, and another process's turn on the core
    is not the processor's cost. ``outputs``, when given, collects what the batches produced.
    """
    processor, stores = new_processor(partitions, policies)
    gc.collect()
    took = 0.0
    for batch in batches:
        started = time.process_time()
        produced = processor.handle_batch(batch)
        partition_store = stores[batch[0].partition]
        partition_store.take_changes()
        partition_store.commit(None)  # as each partition's transaction does
        took += time.process_time() - started
        if outputs is not None:
            outputs += produced
    return took, processor


def measure(cases: int, runs: int, partitions: int) -> Result:
    batches = build_batches(cases, partitions)
    records = sum(len(b) for b in batches)
    run_once(
        batches[: max(1, len(batches) // 10)], partitions
    )  # warm-up: imports, caches, allocator
    seconds = []
    for _ in range(runs):
        took, processor = run_once(batches, partitions)
        _check(processor, cases)
        seconds.append(took)
    per_record = tuple(round(s / records * 1e6, 2) for s in seconds)
    return Result(
        cases=cases,
        records=records,
        batches=len(batches),
        runs=runs,
        us_per_record=statistics.median(per_record),
        us_per_record_runs=per_record,
        commit=_commit(),
        python=platform.python_version(),
    )


def _check(processor: TallyProcessor, cases: int) -> None:
    """Every case passed, nothing was dead-lettered: the run measured the intended work."""
    stats = processor.stats
    decided = sum(stats.decisions.values())
    if (
        decided != cases
        or stats.dead_letters
        or stats.verdicts != cases * harness.VERDICTS_PER_CASE
    ):
        raise AssertionError(
            f"expected {cases} decisions and no dead letters, got {decided} decisions, "
            f"{stats.verdicts} verdicts and dead letters {dict(stats.dead_letters)}"
        )


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(harness.ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(harness.ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def report(result: Result, against: dict[str, Any] | None) -> str:
    runs = ", ".join(f"{r:.2f}" for r in result.us_per_record_runs)
    lines = [
        f"processor: {result.cases} cases, {result.records} records in {result.batches} batches",
        f"  {result.us_per_record:.2f} µs per record (median of {result.runs}: {runs})",
        f"  {1e6 / result.us_per_record:,.0f} records/s on one core, commit {result.commit}",
    ]
    if against is not None:
        before = float(against["us_per_record"])
        lines.append(
            f"  before ({against.get('commit', '?')}): {before:.2f} µs per record; "
            f"after: {result.us_per_record:.2f}; {before / result.us_per_record:.2f}x faster"
        )
    return "\n".join(lines)


def main(cases: int, runs: int, partitions: int, save: Path | None, against: Path | None) -> int:
    baseline = orjson.loads(against.read_bytes()) if against is not None else None
    result = measure(cases, runs, partitions)
    print(report(result, baseline))
    if save is not None:
        save.write_bytes(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2))
        print(f"figures written to {save}")
    return 0


def against_commit(rev: str, rounds: int, cases: int, runs: int) -> int:
    """This checkout's processor and commit ``rev``'s, in alternate child processes of one run
    (bench/baseline.py): medians over the rounds, spread, and the speed-up."""
    from bench import baseline

    args = ["--cases", str(cases), "--runs", str(runs)]
    with baseline.exported(rev) as path:
        now, before = baseline.processor_interleaved(args, path, rounds)
    print(f"processor, µs per record, {cases} cases, median (min-max) of {rounds} rounds")
    print("\n".join(baseline.table({"processor": now}, {"processor": before}, rev, "µs")))
    return 0
