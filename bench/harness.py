"""Shared pieces of the benchmarks: settings, topics, fixtures, loaders, watchers, processes.

Every benchmark runs on topics with its own unique prefix, deleted afterwards, and measures its
raw-aiokafka baseline in the same run, so machine noise hits both sides of a ratio alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psutil

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Reason, Severity, Span, Verdict, Vote, now_ms
from ratifier.core.polling import wait_until
from ratifier.core.signing import Signer
from ratifier.core.topics import TopicNames
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.io.client import assign_all
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RUN_PY = BENCH_DIR / "run.py"
VALIDATORS = ("sim-a", "sim-b", "sim-c", "sim-d", "redteam")
VERDICTS_PER_CASE = len(VALIDATORS)
# ~300 characters, like a short model answer.
CONTENT = (
    "The capital of Australia is Canberra, chosen in 1908 as a compromise between Sydney and "
    "Melbourne. Parliament first sat there in 1927. It is home to the High Court, the National "
    "Gallery and the Australian War Memorial, and lies in the Australian Capital Territory, "
    "about 280 km south-west of Sydney."
)


def base_settings(**overrides: Any) -> Settings:
    # Anchored at the project root so any cwd finds the stack `ratifier stack up` started.
    anchored: dict[str, Any] = {}
    if not os.environ.get("RATIFIER_STATE_DIR"):
        anchored["state_dir"] = ROOT / ".state"
    if not os.environ.get("RATIFIER_CACHE_DIR"):
        anchored["cache_dir"] = ROOT / ".cache"
    return Settings.from_env(None, **{**anchored, **overrides})


def unique_prefix(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def topics_for(settings: Settings, extra: Iterable[str] = ()) -> AsyncIterator[TopicNames]:
    """Create the prefix's topics (plus ``extra``); delete everything with the prefix after."""
    await ensure_topics(settings, [*TopicNames.from_settings(settings).public, *extra])
    try:
        yield TopicNames.from_settings(settings)
    finally:
        prefix = settings.topic_prefix
        async with admin_client(settings) as admin:
            ours = [
                t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))
            ]
        await delete_topics(settings, ours)


# --- fixtures --------------------------------------------------------------------------------


def candidate(case_id: str, produced_at_ms: int | None = None) -> Candidate:
    return Candidate(
        case_id=case_id,
        attempt=1,
        candidate_id=f"{case_id}-1",
        policy="default",
        category="general",
        query="What is the capital of Australia, and why was it chosen?",
        content=CONTENT,
        producer="bench",
        produced_at_ms=now_ms() if produced_at_ms is None else produced_at_ms,
    )


def verdict(cand: Candidate, validator_id: str) -> Verdict:
    """sim-d rejects with reasons (the realistic larger record); the others accept."""
    rejects = validator_id == "sim-d"
    reasons = (
        (
            Reason("unsupported-claim", "the 280 km figure is not in the sources", Span(240, 270)),
            Reason("style", "answer is longer than the question needs"),
        )
        if rejects
        else ()
    )
    return Verdict(
        case_id=cand.case_id,
        attempt=cand.attempt,
        candidate_id=cand.candidate_id,
        validator_id=validator_id,
        validator_version="1.0",
        vote=Vote.REJECT if rejects else Vote.ACCEPT,
        confidence=0.9,
        severity=Severity.MAJOR if rejects else None,
        reasons=reasons,
        latency_ms=3,
        produced_at_ms=now_ms(),
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    cases: int
    records: int
    seconds: float


async def preload(
    settings: Settings,
    cases: int,
    *,
    verdicts: bool = True,
    tag: str = "c",
    signers: Mapping[str, Signer] | None = None,
) -> Loaded:
    """Write ``cases`` candidates (and their five verdicts) as fast as the producer goes.

    With ``signers`` (validator id -> its key), every verdict is signed (bench/signing.py)."""
    names = TopicNames.from_settings(settings)
    producer = make_producer(
        settings, client_id="bench-loader", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    records = 0
    try:
        pending: list[asyncio.Future[object]] = []
        for i in range(cases):
            cand = candidate(f"{tag}{i:08d}")
            key = cand.case_id.encode()
            pending.append(await producer.send(names.candidates, codec.encode(cand), key=key))
            records += 1
            if verdicts:
                for validator_id in VALIDATORS:
                    vote = verdict(cand, validator_id)
                    if signers is not None:
                        vote = signers[validator_id].sign(vote)
                    value = codec.encode(vote)
                    pending.append(await producer.send(names.verdicts, value, key=key))
                    records += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return Loaded(cases, records, time.perf_counter() - started)


# --- watching the broker -----------------------------------------------------------------------


@dataclass
class Arrivals:
    """When records arrived on some topics: (perf_counter, cumulative count) per batch."""

    marks: list[tuple[float, int]] = field(default_factory=list)
    count: int = 0

    def count_at(self, moment: float) -> int:
        seen = 0
        for at, total in self.marks:
            if at > moment:
                break
            seen = total
        return seen

    @property
    def first(self) -> float:
        return self.marks[0][0]

    @property
    def last(self) -> float:
        return self.marks[-1][0]


async def count_records(
    settings: Settings, topics: Sequence[str], target: int, timeout_s: float
) -> Arrivals:
    """Read ``topics`` from the start until ``target`` records have arrived (or time out)."""
    consumer = make_consumer(settings, group_id=None, client_id="bench-counter")
    await consumer.start()
    arrivals = Arrivals()
    deadline = time.monotonic() + timeout_s
    try:
        await assign_all(consumer, topics, from_beginning=True)
        while arrivals.count < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {arrivals.count} of {target} records in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=200)
            n = sum(len(rs) for rs in batch.values())
            if n:
                arrivals.count += n
                arrivals.marks.append((time.perf_counter(), arrivals.count))
    finally:
        await consumer.stop()
    return arrivals


async def live_keys(
    settings: Settings, topic: str, idle_s: float = 2.0, *, marked: Callable[[bytes], bool]
) -> tuple[int, int]:
    """Keys of a compacted topic whose latest record is not a tombstone: a table's live entries,
    as (unmarked, marked) counts (``marked``: e.g. the tally's finished-case markers).

    Read from the start until nothing arrives for ``idle_s``; the keys themselves are not kept
    (their hashes are), so a changelog of millions of cases reads in bounded memory.
    """
    consumer = make_consumer(settings, group_id=None, client_id="bench-live-keys")
    await consumer.start()
    live: dict[bool, set[int]] = {False: set(), True: set()}
    try:
        await assign_all(consumer, [topic], from_beginning=True)
        while batch := await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=10_000):
            for records in batch.values():
                for record in records:
                    key = record.key or b""
                    keys = live[marked(key)]
                    if record.value is None:
                        keys.discard(hash(key))
                    else:
                        keys.add(hash(key))
    finally:
        await consumer.stop()
    return len(live[False]), len(live[True])


async def wait_assigned(settings: Settings, group: str, members: int, timeout_s: float) -> float:
    """perf_counter when ``group`` is first seen Stable with ``members`` members (polled 20/s)."""
    async with admin_client(settings) as admin:

        async def stable() -> bool:
            with contextlib.suppress(Exception):  # the group may not exist yet
                (response,) = await admin.describe_consumer_groups([group])
                _error, _group_id, state, *_rest, found = response.groups[0][:6]
                return bool(state == "Stable" and len(found) >= members)
            return False

        await wait_until(stable, timeout_s, f"group {group} stable with {members} members", 0.05)
    return time.perf_counter()


async def committed(settings: Settings, group: str, topic: str) -> int:
    """Sum of the group's committed offsets on ``topic`` (records it has finished)."""
    async with admin_client(settings) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def wait_committed(
    settings: Settings, group: str, topic: str, target: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while (done := await committed(settings, group, topic)) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group} committed {done} of {target} on {topic}")
        await asyncio.sleep(0.25)


# --- processes ---------------------------------------------------------------------------------

T = TypeVar("T")


class Target(Protocol):
    """A process under test (or a set of them) that can say which of them ended on its own."""

    log_dir: Path

    def exited(self) -> dict[str, int]: ...


async def watched(target: Target, work: Awaitable[T]) -> T:
    """``work``'s result, failing at once if ``target`` dies first (instead of at the timeout).

    A tally that crashes at start-up, e.g. an engine that cannot run in this build, would
    otherwise leave the bench waiting for its decisions for the whole timeout.
    """
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait([task], timeout=0.5)
            if not task.done() and (ended := target.exited()):
                raise RuntimeError(f"{ended} ended (exit codes); see {target.log_dir}")
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Tallies:
    """``ratifier tally run`` worker processes through :class:`Fleet`, with their psutil handles."""

    def __init__(self, settings: Settings, workers: int = 1) -> None:
        self.settings = settings
        self.workers = workers
        self.log_dir = settings.state_dir / "bench-logs" / settings.topic_prefix
        self.fleet = Fleet(Fleet.env_for(settings), self.log_dir)
        self.processes: list[psutil.Process] = []
        self.group = TopicNames.from_settings(settings).tally_app_id

    async def start(self) -> float:
        """Start the workers; returns perf_counter at spawn."""
        me = psutil.Process()
        before = {p.pid for p in me.children()}
        started = time.perf_counter()
        await self.fleet.start(*(ProcessSpec.tally(f"tally-{i}") for i in range(self.workers)))
        self.processes = [p for p in me.children() if p.pid not in before]
        return started

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self.processes)

    def exited(self) -> dict[str, int]:
        return self.fleet.exited()

    async def stop(self) -> None:
        await self.fleet.stop()

    async def __aenter__(self) -> Tallies:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Relay:
    """A baseline relay (``bench/run.py relay``, see bench/relay.py) in its own process."""

    def __init__(self, settings: Settings, group: str, out_topic: str, engine: str = "raw") -> None:
        self.settings = settings
        self.group = group
        self.args = ["relay", "--engine", engine, "--group", group, "--out", out_topic]
        # Its output goes beside the tally's logs (faust's relay logs like a tally worker).
        self.log_dir = settings.state_dir / "bench-logs" / settings.topic_prefix
        self.log_path = self.log_dir / f"{engine}.log"
        self.engine = engine
        self.proc: asyncio.subprocess.Process | None = None

    def exited(self) -> dict[str, int]:
        code = None if self.proc is None else self.proc.returncode
        return {} if code is None else {f"{self.engine} relay": code}

    async def start(self) -> float:
        env = {**os.environ, **Fleet.env_for(self.settings), "PYTHONSAFEPATH": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(RUN_PY),
                *self.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return started

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def __aenter__(self) -> Relay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]
