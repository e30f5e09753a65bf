"""The validator runtime through the real broker: it judges only candidates whose policy lists it,
one hung call holds only its own slot, and an instance that joins under load leaves no candidate
unjudged."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Judgement, Verdict, Vote
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_records, running, wait_until, write_policy
from ratifier.schemas import codec
from ratifier.validators.runtime import ValidatorWorker

pytestmark = pytest.mark.timeout(180)


def candidate(n: int, policy: str) -> Candidate:
    return Candidate(f"case-{n}", 1, f"cand-{n}", policy, "general", "q", "a", "test", 1)


async def send(settings: Settings, candidates: list[Candidate]) -> None:
    producer = make_producer(settings, client_id="test-candidates")
    await producer.start()
    try:
        topic = TopicNames.from_settings(settings).candidates
        for c in candidates:
            await producer.send(topic, codec.encode(c), key=c.case_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _true(value: bool) -> bool:
    return value


class CountingJudge:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # by policy

    async def __call__(self, candidate: Candidate) -> Judgement:
        self.calls[candidate.policy] += 1
        return Judgement(Vote.ACCEPT, 0.9)


async def test_validators_judge_only_the_candidates_of_their_policies(
    settings: Settings, tmp_path: Path
) -> None:
    write_policy(tmp_path, "alpha", ["a1"], accepts=1, window_seconds=10, max_attempts=1)
    write_policy(tmp_path, "beta", ["b1"], accepts=1, window_seconds=10, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    judges = {"a1": CountingJudge(), "b1": CountingJudge()}
    workers = [ValidatorWorker(tuned, vid, judge) for vid, judge in judges.items()]
    async with running(*workers):
        await send(tuned, [candidate(n, "alpha" if n % 2 else "beta") for n in range(40)])

        def all_seen() -> bool:
            return all(w.judged + w.not_listed == 40 for w in workers)

        await wait_until(lambda: _true(all_seen()), 60, "every candidate seen by both")
    assert judges["a1"].calls == Counter({"alpha": 20})
    assert judges["b1"].calls == Counter({"beta": 20})
    assert [(w.judged, w.not_listed) for w in workers] == [(20, 20), (20, 20)]
    names = TopicNames.from_settings(tuned)
    verdicts = [codec.decode_as(r.value or b"", Verdict) for r in
                await read_records(tuned, [names.verdicts], idle_s=1.0)]  # fmt: skip
    by_validator = Counter((v.validator_id, v.candidate_id.split("-")[1]) for v in verdicts)
    assert all((vid == "a1") == (int(n) % 2 == 1) for vid, n in by_validator)
    assert len(verdicts) == 40


async def test_one_hung_call_holds_only_its_own_slot(settings: Settings, tmp_path: Path) -> None:
    write_policy(tmp_path, "alpha", ["v"], accepts=1, window_seconds=10, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    release = asyncio.Event()

    async def judge(c: Candidate) -> Judgement:
        if c.case_id == "case-0":
            await release.wait()  # hangs until the test lets it go
        return Judgement(Vote.ACCEPT, 0.9)

    worker = ValidatorWorker(tuned, "v", judge, concurrency=4, timeout_s=120)
    async with running(worker):
        await send(tuned, [candidate(n, "alpha") for n in range(50)])
        await wait_until(lambda: _true(worker.judged == 49), 60, "all but the hung one judged")
        assert worker.busy_slots == 1  # the hung call still runs: nobody waited for it
        scraped = generate_latest(worker.metrics.registry).decode()  # the scale signals
        assert 'ratifier_validator_busy_slots{validator="v"} 1.0' in scraped
        assert 'ratifier_validator_slots{validator="v"} 4.0' in scraped
        assert 'ratifier_validator_in_flight{validator="v"} 1.0' in scraped
        assert 'ratifier_validator_queue_wait_seconds_count{validator="v"} 50.0' in scraped
        release.set()
        await wait_until(lambda: _true(worker.judged == 50), 10, "the hung one too")


async def test_an_instance_joining_under_load_leaves_no_candidate_unjudged(
    settings: Settings, tmp_path: Path
) -> None:
    write_policy(tmp_path, "alpha", ["v"], accepts=1, window_seconds=10, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    judged: Counter[str] = Counter()

    async def judge(c: Candidate) -> Judgement:
        await asyncio.sleep(0.05)  # a judge's work: the backlog lasts ~15 s on one instance
        judged[c.case_id] += 1
        return Judgement(Vote.ACCEPT, 0.9)

    total = 600
    first = ValidatorWorker(tuned, "v", judge, concurrency=2)
    second = ValidatorWorker(tuned, "v", judge, concurrency=2)
    async with running(first):
        await send(tuned, [candidate(n, "alpha") for n in range(total)])
        await wait_until(lambda: _true(first.judged >= 20), 60, "the first instance busy")
        async with running(second):
            await wait_until(lambda: _true(second.judged > 0), 60, "the second instance works")
            assert len(judged) < total  # it joined while there was a backlog
            await wait_until(lambda: _true(len(judged) == total), 120, "every candidate judged")
    names = TopicNames.from_settings(tuned)
    verdicts = {codec.decode_as(r.value or b"", Verdict).case_id for r in
                await read_records(tuned, [names.verdicts], idle_s=1.0)}  # fmt: skip
    assert len(verdicts) == total  # a verdict for each (a few twice: at least once)


async def test_a_wave_delay_waits_per_candidate_holding_no_slot(
    settings: Settings, tmp_path: Path
) -> None:
    write_policy(tmp_path, "alpha", ["v"], accepts=1, window_seconds=10, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    judged: list[str] = []

    async def judge(c: Candidate) -> Judgement:
        judged.append(c.case_id)
        return Judgement(Vote.ACCEPT, 0.9)

    worker = ValidatorWorker(tuned, "v", judge, concurrency=1, delay_s=3.0)
    async with running(worker):
        await send(tuned, [candidate(n, "alpha") for n in range(10)])
        # All ten wait their delay at once, and none holds the one judge slot meanwhile.
        await wait_until(lambda: _true(worker.in_flight == 10), 30, "ten candidates waiting")
        assert (worker.busy_slots, judged) == (0, [])
        await wait_until(lambda: _true(worker.judged == 10), 30, "all judged after one delay")
