"""The outcomes runtime through the real broker and redis: one outcome per case, trusted store."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.errors import ProducerFenced
from redis.asyncio import Redis

from ratifier.app.configs import outcomes_config, review_config
from ratifier.core.config import Settings
from ratifier.core.models import DeadLetter, DeadLetterReason, Outcome, OutcomeClass
from ratifier.core.topics import TopicNames
from ratifier.features.outcomes import runtime as outcomes_runtime
from ratifier.features.outcomes.core import outcome_id_for
from ratifier.features.outcomes.runtime import OutcomesWriter, TrustedProjector
from ratifier.features.review.core import Action, load_reviewers
from ratifier.features.review.io.metrics import AgreementStore
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.features.review.runtime.feeder import ReviewFeeder
from ratifier.io.client import Client, read_to_end
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_records, wait_until
from ratifier.io.trusted_store import TrustedStore
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec
from tests.integration.review_support import packet, pass_decision, redis_for, write_reviewers

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Settings, Redis]]:
    write_reviewers(tmp_path, "ann", "bob")
    tuned = settings.with_overrides(review_tokens_file=tmp_path / "reviewers.txt")
    async with redis_for(tuned) as redis:
        yield tuned, redis


@contextlib.asynccontextmanager
async def running(*workers: object) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    for w in workers:
        await w.start()  # type: ignore[attr-defined]
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]  # type: ignore[attr-defined]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in workers:
            await w.stop()  # type: ignore[attr-defined]


async def outcomes_on(settings: Settings) -> list[Outcome]:
    names = TopicNames.from_settings(settings)
    return [
        codec.decode_as(r.value or b"", Outcome)
        for r in await read_records(settings, [names.outcomes], 1.5)
    ]


async def outcome_keys(settings: Settings) -> list[str]:
    """The case ids of the outcomes committed so far (a busy topic's read ends too)."""
    names = TopicNames.from_settings(settings)
    reader = read_to_end(settings, [names.outcomes], client_id="test-outcome-keys")
    return [r.key.decode() async for r in reader if r.key is not None]


async def test_every_case_gets_exactly_one_outcome_and_the_trusted_store_the_answers(
    env: tuple[Settings, Redis],
) -> None:
    settings, redis = env
    names = TopicNames.from_settings(settings)
    queue = ReviewQueue(redis, review_config(settings), load_reviewers(settings.review_tokens_file))
    store = TrustedStore.from_settings(redis, settings)
    producer = make_producer(settings, client_id="test-outcomes")
    await producer.start()
    try:
        # Two automatic passes (attempt 1 and 3), three escalations, one malformed record.
        for case_id, attempt in (("auto-1", 1), ("auto-3", 3)):
            d = pass_decision(case_id, attempt)
            await producer.send_and_wait(names.passed, codec.encode(d), key=case_id.encode())
        escalations = [packet(f"esc-{n}") for n in range(3)]
        for p in escalations:
            for _ in range(2):  # every escalation delivered twice: queued once
                await producer.send_and_wait(
                    names.escalate, codec.encode(p), key=p.case_id.encode()
                )
        await producer.send_and_wait(names.passed, b"\xc3\x01garbage", key=b"bad")
        await producer.send_and_wait(names.escalate, b"not avro", key=b"bad")

        writer = OutcomesWriter(outcomes_config(settings), redis)
        async with running(
            ReviewFeeder(review_config(settings), redis),
            writer,
            TrustedProjector(outcomes_config(settings), redis),
        ):
            await wait_until(lambda: _length_is(queue, 3), 30, "three queued escalations")
            first_candidate = escalations[0].attempts[0].candidate.candidate_id
            await queue.resolve(
                "esc-0", "ann", Action.CONFIRM, candidate_id=first_candidate, require_claim=False
            )
            await queue.resolve("esc-1", "bob", Action.CORRECT, text="It takes 14 days.",
                                note="both attempts said 30", require_claim=False)  # fmt: skip
            await queue.resolve("esc-2", "bob", Action.UNRESOLVED, note="policy unclear",
                                require_claim=False)  # fmt: skip

            async def four_trusted_or_more() -> bool:
                return await store.count() >= 4

            await wait_until(four_trusted_or_more, 30, "four trusted answers")
            await wait_until(lambda: _written(writer, 5), 30, "five outcomes")
    finally:
        await producer.stop()

    outcomes = await outcomes_on(settings)
    by_case = Counter(o.case_id for o in outcomes)
    assert by_case == {c: 1 for c in ("auto-1", "auto-3", "esc-0", "esc-1", "esc-2")}
    kinds = {o.case_id: (o.kind, o.reviewer) for o in outcomes}
    assert kinds == {
        "auto-1": (OutcomeClass.CONFIRMED, "auto"),
        "auto-3": (OutcomeClass.CORRECTED, "auto"),
        "esc-0": (OutcomeClass.CONFIRMED, "ann"),
        "esc-1": (OutcomeClass.CORRECTED, "bob"),
        "esc-2": (OutcomeClass.UNRESOLVED, "bob"),
    }
    by_id = {o.case_id: o for o in outcomes}
    assert by_id["esc-1"].content == "It takes 14 days."
    assert by_id["esc-1"].note == "both attempts said 30"
    assert by_id["esc-0"].attempt == 1
    assert by_id["esc-0"].resolves == ("esc-esc-0",)
    assert by_id["esc-2"].content is None
    assert by_id["esc-2"].note == "policy unclear"
    assert by_id["auto-3"].policy_version == "v7"
    assert by_id["auto-3"].resolves == ("pass-auto-3",)
    assert all(o.outcome_id == outcome_id_for(o.case_id) for o in outcomes)

    # The trusted store: exactly the confirmed and corrected ones.
    assert sorted(await store.case_ids()) == ["auto-1", "auto-3", "esc-0", "esc-1"]
    assert await store.get("esc-2") is None
    assert await store.get("esc-1") == by_id["esc-1"]
    async with Client(settings, producer="test-trusted") as client:
        assert await client.trusted_answer("auto-3") == by_id["auto-3"]
        assert await client.trusted_answer("esc-2") is None  # unresolved
        assert await client.trusted_answer("no-such-case") is None

    letters = [
        codec.decode_as(r.value or b"", DeadLetter)
        for r in await read_records(settings, [names.deadletter], 1.0)
    ]
    assert {(x.source_topic, x.reason, x.original) for x in letters} == {
        (names.passed, DeadLetterReason.MALFORMED, b"\xc3\x01garbage"),
        (names.escalate, DeadLetterReason.MALFORMED, b"not avro"),
    }
    assert len(letters) == 2
    assert all(x.detail for x in letters)

    # Accuracy vs human: esc-0 confirmed attempt 1 (the tally rejected it: disagreed) and not
    # attempt 2 (agreed); esc-1 corrected: both rejections agreed; esc-2 compares nothing.
    totals = await AgreementStore(redis, review_config(settings)).totals()
    assert (totals.cases, totals.attempts, totals.attempts_agreed) == (2, 4, 3)
    assert totals.validators["fact"] == (3, 4)  # REJECT agreed except on esc-0's attempt 1
    assert totals.validators["style"] == (1, 4)  # ACCEPT agreed only there
    assert "safety" not in totals.validators  # abstentions compare nothing


async def test_a_new_writer_fences_the_old_and_writes_no_second_outcome(
    env: tuple[Settings, Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, redis = env
    names = TopicNames.from_settings(settings)
    queue = ReviewQueue(redis, review_config(settings), load_reviewers(settings.review_tokens_file))
    await queue.ensure_groups()
    producer = make_producer(settings, client_id="test-outcomes")
    await producer.start()
    try:
        d = pass_decision("case-1", 1)
        await producer.send_and_wait(names.passed, codec.encode(d), key=b"case-1")
        p = packet("case-2")
        await queue.enqueue(p)
        await queue.resolve("case-2", "ann", Action.UNRESOLVED, note="n", require_claim=False)
        first = OutcomesWriter(outcomes_config(settings), redis)
        async with running(first):
            await wait_until(lambda: _written(first, 2), 30, "two outcomes")
        # Crash between the commit and the acknowledgement, replay of the pass topic, and a
        # second pass decision for the case: all seen again by a new writer.
        await redis.xgroup_setid(queue.resolutions_key, "outcomes", "0")
        await producer.send_and_wait(names.passed, codec.encode(d), key=b"case-1")
        # And a resolution the crashed writer had read but not yet written: pending, not lost.
        await queue.enqueue(packet("case-3"))
        await queue.resolve("case-3", "bob", Action.UNRESOLVED, note="n", require_claim=False)
        taken = await queue.read_resolutions("writer", pending=False)  # case-2 again, and case-3
        monkeypatch.setattr(outcomes_runtime, "PENDING_CHECK_S", 0.5)
        second = OutcomesWriter(outcomes_config(settings), redis)
        await second.start()
        assert second.decided == {"case-1", "case-2"}
        stop = asyncio.Event()
        run = asyncio.create_task(second.run(stop))
        try:
            await wait_until(lambda: _written(second, 3), 30, "case-3 written")
            # Every input read again (the replayed pass decision, the re-delivered resolution)
            # found its case decided: nothing written for it.
            await wait_until(lambda: _duplicates(second, 2), 30, "two inputs ignored")
            assert second.decided == {"case-1", "case-2", "case-3"}
            # The fenced writer, still running, reads one more after the new one started: the
            # new one's periodic re-read of the pending resolutions writes it.
            await queue.enqueue(packet("case-4"))
            await queue.resolve("case-4", "bob", Action.UNRESOLVED, note="n", require_claim=False)
            late = await queue.read_resolutions("writer", pending=False)
            assert [t.resolution.case_id for t in late] == ["case-4"]
            await wait_until(lambda: _written(second, 4), 30, "case-4 re-read and written")
        finally:
            stop.set()
            await run
            await second.stop()
        assert await redis.xpending(queue.resolutions_key, "outcomes") == {
            "pending": 0, "min": None, "max": None, "consumers": []
        }  # fmt: skip
    finally:
        await producer.stop()
    assert Counter(o.case_id for o in await outcomes_on(settings)) == {
        "case-1": 1, "case-2": 1, "case-3": 1, "case-4": 1
    }  # fmt: skip
    assert [t.resolution.case_id for t in taken] == ["case-2", "case-3"]


async def test_two_live_writers_the_newer_fences_the_older_and_no_case_gets_two_outcomes(
    env: tuple[Settings, Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both writers running at once (a paused or partitioned writer that comes back): after the
    second starts, the first can commit nothing, its run fails with the fencing error, and every
    input sent before and after, read by either writer, ends in exactly one outcome."""
    settings, redis = env
    monkeypatch.setattr(outcomes_runtime, "PENDING_CHECK_S", 0.5)
    queue = ReviewQueue(redis, review_config(settings), load_reviewers(settings.review_tokens_file))
    await queue.ensure_groups()
    expected = {f"case-{n}" for n in range(40)} | {f"esc-{n}" for n in range(6)}
    stop = asyncio.Event()
    older, newer = (
        OutcomesWriter(outcomes_config(settings), redis),
        OutcomesWriter(outcomes_config(settings), redis),
    )
    await older.start()
    older_run = asyncio.create_task(older.run(stop))
    runs = [older_run]
    try:
        await _send_passes(settings, range(10))
        await _resolve(queue, "esc-0")
        await wait_until(lambda: _written(older, 11), 30, "the older writer's outcomes")
        await newer.start()  # fences the older one, which is still polling
        runs.append(asyncio.create_task(newer.run(stop)))
        assert older.decided.issubset(newer.decided)
        # Both live now: the pass topic's partitions are split between them, and either may
        # read a resolution; every one the older reads must still reach the topic exactly once.
        await _send_passes(settings, range(40))  # 0-9 again: replays for decided cases
        for n in range(1, 6):
            await _resolve(queue, f"esc-{n}")
        await wait_until(lambda: _done(older_run), 60, "the older writer to fail, fenced")
        fenced = older_run.exception()
        assert isinstance(fenced, ProducerFenced)
        await older.stop()  # its partitions and pending resolutions move to the newer writer
        await wait_until(lambda: _covers(newer, expected), 60, "every case decided by the newer")
    finally:
        stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
        if older.ready:
            await older.stop()
        await newer.stop()
    counts = Counter(o.case_id for o in await outcomes_on(settings))
    assert set(counts) == expected
    assert max(counts.values()) == 1


async def test_killed_mid_stream_and_restarted_the_writer_loses_and_doubles_no_outcome(
    env: tuple[Settings, Redis],
) -> None:
    """``ratifier outcomes run`` SIGKILLed twice while pass decisions and resolutions stream in
    (each time once it is ready and has written some), restarted each time: every case ends with
    exactly one outcome on the topic."""
    settings, redis = env
    queue = ReviewQueue(redis, review_config(settings), load_reviewers(settings.review_tokens_file))
    await queue.ensure_groups()
    sent: set[str] = set()
    streaming = asyncio.Event()
    streaming.set()

    async def stream() -> None:
        chunk = 0
        while streaming.is_set():  # 20 pass decisions and one resolution at a time
            await _send_passes(settings, range(chunk * 20, chunk * 20 + 20))
            await _resolve(queue, f"esc-{chunk}")
            sent.update({f"case-{n}" for n in range(chunk * 20, chunk * 20 + 20)}, {f"esc-{chunk}"})
            chunk += 1

    fleet = Fleet(
        Fleet.env_for(settings), settings.state_dir / "it-outcomes" / settings.topic_prefix
    )
    log = fleet.log_dir / "outcomes.log"
    async with fleet:
        await fleet.start(ProcessSpec.outcomes())
        sending = asyncio.create_task(stream())
        try:
            for writers in (1, 2):
                at_start: list[int] = []

                async def writing(writers: int = writers, at_start: list[int] = at_start) -> bool:
                    assert not fleet.exited(), f"writer died: {fleet.exited()} ({fleet.log_dir})"
                    assert not sending.done()
                    if log.read_text(errors="replace").count("outcomes writer ready") < writers:
                        return False
                    written = len(await outcome_keys(settings))
                    at_start[:] = at_start or [written]
                    return written >= at_start[0] + 40  # this writer wrote some: mid-stream

                await wait_until(writing, 120, f"writer {writers} ready and writing")
                assert await fleet.kill_process("outcomes") == -signal.SIGKILL
                await fleet.start(ProcessSpec.outcomes())
            streaming.clear()
            await sending

            async def all_written() -> bool:
                assert not fleet.exited(), f"writer died: {fleet.exited()} ({fleet.log_dir})"
                return set(await outcome_keys(settings)) >= sent

            await wait_until(all_written, 120, "an outcome for every case")
        finally:
            streaming.clear()
            await asyncio.gather(sending, return_exceptions=True)
    counts = Counter(o.case_id for o in await outcomes_on(settings))
    assert set(counts) == sent
    assert max(counts.values()) == 1, [c for c, n in counts.items() if n > 1]
    assert log.read_text(errors="replace").count("outcomes writer ready") == 3


async def _send_passes(settings: Settings, numbers: range) -> None:
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="test-outcomes-passes")
    await producer.start()
    try:
        for n in numbers:
            case = f"case-{n}"
            decision = codec.encode(pass_decision(case, 1))
            await producer.send_and_wait(names.passed, decision, key=case.encode())
    finally:
        await producer.stop()


async def _resolve(queue: ReviewQueue, case: str) -> None:
    await queue.enqueue(packet(case))
    await queue.resolve(case, "ann", Action.UNRESOLVED, note="n", require_claim=False)


async def _length_is(queue: ReviewQueue, n: int) -> bool:
    return (await queue.stats()).length == n


async def _written(writer: OutcomesWriter, n: int) -> bool:
    return len(writer.decided) >= n


async def _done(task: asyncio.Task[None]) -> bool:
    return task.done()


async def _covers(writer: OutcomesWriter, cases: set[str]) -> bool:
    return writer.decided >= cases


async def _duplicates(writer: OutcomesWriter, n: int) -> bool:
    samples = writer.duplicates.collect()[0].samples
    return sum(s.value for s in samples if s.name.endswith("_total")) >= n
