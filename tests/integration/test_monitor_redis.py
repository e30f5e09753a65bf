"""The monitor and Redis going away: it waits, says what for, resumes, loses and repeats nothing.

Runs its own redis-server on a free port (the shared one on the stack's port is never touched),
with an append-only file, so a restart keeps what was written before it. Decisions are written
straight to the decision topics: the monitor reads them as it reads the tally's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ratifier.app.configs import monitor_config
from ratifier.core.config import Settings
from ratifier.core.models import (
    Candidate,
    FailureReason,
    OutcomeClass,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.features.monitor.runtime.worker import MonitorWorker
from ratifier.io.kafka import make_producer
from ratifier.io.metrics import serve_metrics
from ratifier.io.readmodels import OffsetGroup, ReadModels
from ratifier.io.testing import wait_until
from ratifier.schemas import codec
from tests.integration.monitor_support import free_port, scrape

pytestmark = pytest.mark.integration

VALIDATORS = ("a", "b", "c")


class OwnRedis:
    """A redis-server of this test's own, restartable, its data kept in an append-only file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is part of the stack (scripts/install-prereqs)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--save", "", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    async def answers(self) -> bool:
        client = Redis.from_url(self.url)
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def _decision(i: int) -> PassDecision | RetryRequest:
    case = f"case-{i}"
    candidate = Candidate(case, 1, f"{case}/1", "default", "billing", "q", "c", "t", 0)
    votes = tuple(
        Verdict(case, 1, f"{case}/1", v, "1", Vote.REJECT if (i + n) % 4 == 0 else Vote.ACCEPT,
                1.0, None, (), 5, 0)
        for n, v in enumerate(VALIDATORS)
    )  # fmt: skip
    if i % 5 == 0:
        return RetryRequest(f"d{i}", case, 1, 2, candidate, FailureReason.VETO, votes, (), votes,
                            "default", "1", 0)  # fmt: skip
    return PassDecision(f"d{i}", case, 1, candidate, 0.9, votes, "default", "1",
                        OutcomeClass.CONFIRMED, 0)  # fmt: skip


def _expected(count: int) -> Counter[tuple[str, str]]:
    expected: Counter[tuple[str, str]] = Counter()
    for i in range(count):
        for vote in _decision(i).votes:
            expected[(vote.validator_id, vote.vote.value)] += 1
    return expected


async def _scoreboard(settings: Settings) -> Counter[tuple[str, str]]:
    async with ReadModels.from_settings(settings) as models:
        rows = await models.scoreboard()
    board: Counter[tuple[str, str]] = Counter()
    for row in rows:
        board[(row.validator, "ACCEPT")] += row.accept
        board[(row.validator, "REJECT")] += row.reject
    return +board


@contextlib.asynccontextmanager
async def running_monitor(settings: Settings) -> AsyncIterator[MonitorWorker]:
    monitor = MonitorWorker(monitor_config(settings), load_policies())
    stop = asyncio.Event()
    async with serve_metrics(settings, monitor.observability()), monitor:
        task = asyncio.create_task(monitor.run(stop))
        try:
            yield monitor
        finally:
            stop.set()
            await task


async def _send(settings: Settings, numbers: range) -> None:
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="e2e-decisions")
    await producer.start()
    try:
        for i in numbers:
            decision = _decision(i)
            topic = names.passed if isinstance(decision, PassDecision) else names.retry
            await producer.send(topic, codec.encode(decision), key=decision.case_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_redis_restart_during_load_loses_and_repeats_nothing(
    settings: Settings, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ratifier.features.monitor.runtime.worker")
    ours = settings.with_overrides(redis_url=own_redis.url, metrics_port=free_port())
    await wait_until(own_redis.answers, 10, "our redis-server")
    async with running_monitor(ours) as monitor:
        await _send(ours, range(0, 150))
        await wait_until(lambda: _counted(ours, 150), 30, "150 decisions counted")
        own_redis.stop()
        await _send(ours, range(150, 400))  # arrives while Redis is down

        async def waiting() -> bool:
            status, text = await scrape(ours.metrics_port, "/readyz")
            return status == 503 and "waiting for Redis" in text

        await wait_until(waiting, 20, "/readyz saying the monitor waits for Redis")
        assert any(
            f"waiting for Redis at {own_redis.url}" in r.getMessage()
            and "Kafka offsets are not committed" in r.getMessage()
            for r in caplog.records
        )
        _, text = await scrape(ours.metrics_port)
        assert "ratifier_monitor_redis_up 0.0" in text
        await asyncio.sleep(2)  # the monitor keeps retrying meanwhile
        own_redis.start()
        await wait_until(lambda: _counted(ours, 400), 60, "all 400 decisions counted")
        assert any("answers again" in r.getMessage() for r in caplog.records)
        assert monitor.readiness().ready
    assert await _scoreboard(ours) == _expected(400)

    # A new monitor (a restart) re-reads the window from the topics: the counts stay exact.
    async with running_monitor(ours) as again:
        await _send(ours, range(400, 450))
        await wait_until(lambda: _counted(ours, 450), 30, "450 decisions counted")
        await wait_until(lambda: _ready(again), 30, "the restarted monitor ready")

        async def rebuilt() -> bool:
            # Its windows were rebuilt from the topics: every final outcome of the hour, not
            # only the 50 decisions it read as new (a retry, every 5th, is not final).
            async with ReadModels.from_settings(ours) as models:
                figures = (await models.figures()).get("default", {})
            return figures.get("final_outcomes") == 450 - 450 // 5

        await wait_until(rebuilt, 30, "the restarted monitor's windows rebuilt")
    assert await _scoreboard(ours) == _expected(450)
    async with ReadModels.from_settings(ours) as models:
        case = await models.case("case-399")
    assert case is not None
    assert case.status == "passed"


async def test_counts_are_applied_once_per_offset(settings: Settings, own_redis: OwnRedis) -> None:
    ours = settings.with_overrides(redis_url=own_redis.url)
    await wait_until(own_redis.answers, 10, "our redis-server")
    group = OffsetGroup("t", 0, first=10, next=20, increments=Counter({"p|a|ACCEPT|x": 3}))
    async with ReadModels.from_settings(ours) as models:
        assert await models.apply_counts([group]) == 1
        assert await models.apply_counts([group]) == 0  # the same records again: skipped
        later = OffsetGroup("t", 0, first=20, next=25, increments=Counter({"p|a|ACCEPT|x": 1}))
        assert await models.apply_counts([later]) == 1
        assert await models.applied_offsets() == {"t:0": 25}
        (row,) = await models.scoreboard()
    assert row.accept == 4


async def _counted(settings: Settings, count: int) -> bool:
    try:
        return sum((await _scoreboard(settings)).values()) == count * len(VALIDATORS)
    except Exception:
        return False


async def _ready(monitor: MonitorWorker) -> bool:
    return monitor.readiness().ready


async def test_stopping_while_redis_is_down_loses_nothing(
    settings: Settings, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    ours = settings.with_overrides(redis_url=own_redis.url)
    await wait_until(own_redis.answers, 10, "our redis-server")
    async with running_monitor(ours):
        await _send(ours, range(0, 50))
        await wait_until(lambda: _counted(ours, 50), 30, "50 decisions counted")
        own_redis.stop()
        await _send(ours, range(50, 120))
        await wait_until(
            lambda: _logged(caplog, "waiting for Redis"), 20, "the monitor waiting for Redis"
        )
    # The monitor stopped cleanly while waiting; a new one, with Redis back, counts the rest.
    assert "stopped while waiting for Redis" in caplog.text
    own_redis.start()
    await wait_until(own_redis.answers, 10, "our redis-server again")
    async with running_monitor(ours):
        await wait_until(lambda: _counted(ours, 120), 30, "all 120 decisions counted")
    assert await _scoreboard(ours) == _expected(120)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text


async def test_two_monitors_share_the_partitions_and_the_counts_stay_exact(
    settings: Settings, own_redis: OwnRedis
) -> None:
    ours = settings.with_overrides(redis_url=own_redis.url)
    await wait_until(own_redis.answers, 10, "our redis-server")
    async with running_monitor(ours) as first, running_monitor(ours) as second:

        async def shared() -> bool:
            mine = {tp.partition for tp in first._consumer.assignment()}
            theirs = {tp.partition for tp in second._consumer.assignment()}
            return bool(mine) and bool(theirs) and not mine & theirs

        await wait_until(shared, 30, "the two monitors sharing the partitions")
        await _send(ours, range(0, 200))
        await wait_until(lambda: _counted(ours, 200), 30, "200 decisions counted")
        assert first.processed
        assert second.processed
    assert await _scoreboard(ours) == _expected(200)
