"""The whole pipeline through the real broker, as separate processes, the way users run it.

One fleet (a tally, five validator groups with one scaled to two instances, a rogue validator
the policy does not name (and which therefore judges nothing), and the demo generator) serves a
few hundred cases plus bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import pytest

from ratifier.app.demo.generator import chance
from ratifier.app.demo.runner import demo_content, demo_processes
from ratifier.app.demo.summary import summarize
from ratifier.core.config import TALLY_ENGINES, Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    FailureReason,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.io.admin import ensure_topics
from ratifier.io.client import Client
from ratifier.io.testing import read_records, read_topics, wait_until
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from ratifier.schemas import codec
from tests.integration.monitor_support import free_ports, scrape, value

pytestmark = pytest.mark.integration

NORMAL_CASES = 200
DOOMED_CASES = 20  # every attempt is bad: must escalate with all attempts in the packet


@pytest.fixture(params=TALLY_ENGINES)
async def fleet(
    stack: object, settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Fleet, Settings]]:
    # Both engines run the same pipeline test: the faust adapter is supported, not a relic.
    tuned = settings.with_overrides(hold_ms=4_000, tick_interval_s=0.2, tally_engine=request.param)
    await ensure_topics(tuned)
    rogue = ProcessSpec.validator("rogue", SIMULATED, {"error_rate": 0.5, "seed": 99})
    processes = [*demo_processes(), rogue]
    fleet = Fleet(
        Fleet.env_for(tuned),
        tuned.state_dir / "e2e" / tuned.topic_prefix,
        metrics_port=free_ports(len(processes)),  # each process serves /metrics, both engines
    )
    await fleet.start(*processes)
    try:
        await fleet.wait_ready(tuned)
        yield fleet, tuned
    finally:
        await fleet.stop()


async def tally_status_says_ready(procs: Fleet, settings: Settings) -> None:
    """``ratifier tally status``, as a script or healthcheck runs it, sees the running tally."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ratifier", "tally", "status",
        env={**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    line = next(x for x in out.decode().splitlines() if procs.worker_id(ProcessSpec.tally()) in x)
    assert process.returncode == 0, out.decode()
    assert settings.tally_engine in line
    assert "ready" in line
    assert line.split()[-1] == "0,1,2,3"  # the partitions column


async def test_cases_reach_exactly_one_final_outcome_with_bad_input_dead_lettered(
    fleet: tuple[Fleet, Settings],
) -> None:
    procs, settings = fleet
    names = TopicNames.from_settings(settings)
    policy = load_policies(settings.policy_dir)["default"]
    await tally_status_says_ready(procs, settings)
    decisions: list[Decision] = []
    finals: set[str] = set()
    case_ids: list[str] = []
    doomed: list[str] = []

    async with Client(settings, producer="e2e") as client:

        async def collect() -> None:
            async for decision in client.decisions(from_beginning=True):
                decisions.append(decision)
                if isinstance(decision, PassDecision | EscalationPacket):
                    finals.add(decision.case_id)

        watcher = asyncio.create_task(collect())
        for i in range(NORMAL_CASES + DOOMED_CASES):
            is_doomed = i >= NORMAL_CASES
            good = not is_doomed and chance("first", settings.topic_prefix, i) < 0.6
            query, content = demo_content(i, good)
            metadata = {"truth": "accept" if good else "reject"}
            if is_doomed:
                metadata["next_truth"] = "reject"
            candidate = client.candidate(content, query=query, metadata=metadata)
            (doomed if is_doomed else case_ids).append(candidate.case_id)
            await client.send(candidate)
        # Bad input on both input topics; the rest must flow on.
        producer = client._producer
        await producer.send_and_wait(names.candidates, b"\x00garbage", key=b"junk-1")
        await producer.send_and_wait(names.verdicts, b"\xc3\x01" + b"\x00" * 12, key=b"junk-2")
        unknown_policy = client.candidate("orphan", policy="no-such-policy")
        await client.send(unknown_policy)

        async def all_final() -> bool:
            assert not procs.exited(), f"processes died: {procs.exited()} ({procs.log_dir})"
            return finals >= set(case_ids + doomed)

        await wait_until(all_final, 150, "every case's final outcome")
        await asyncio.sleep(2.0)  # let any (wrong) second outcome show up before judging
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    summary = summarize(case_ids + doomed, decisions)
    assert summary.no_final_outcome == 0
    assert summary.more_than_one_final_outcome == 0
    assert summary.passed + summary.escalated == NORMAL_CASES + DOOMED_CASES

    by_case: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_case[d.case_id].append(d)
    # Exactly one decision per (case, attempt), attempts consecutive from 1.
    for case_id in case_ids + doomed:
        attempts = sorted(d.attempt for d in by_case[case_id])
        assert attempts == list(range(1, len(attempts) + 1)), (case_id, by_case[case_id])

    retries = [d for d in decisions if isinstance(d, RetryRequest)]
    assert retries, "a 60% first-attempt good rate must produce retries"
    for retry in retries:
        assert retry.next_attempt == retry.attempt + 1
        if retry.reason is not FailureReason.WINDOW_TIMEOUT:
            assert retry.dissent, retry
            assert all(v.vote is not Vote.ACCEPT for v in retry.dissent)
            assert all(v.reasons for v in retry.dissent if v.vote is Vote.REJECT)
        # The generator answered: a later decision exists for the next attempt.
        later = [d for d in by_case[retry.case_id] if d.attempt == retry.next_attempt]
        assert later, f"no decision for attempt {retry.next_attempt} of {retry.case_id}"

    # A doomed attempt passes only when three of the four voters and the red team all err
    # (p ~ 0.00035 per attempt with the demo's error rates): a pass of a doomed case must show
    # those accepts, and at most one in twenty may happen; the rest must escalate.
    escalated = [c for c in doomed if any(isinstance(d, EscalationPacket) for d in by_case[c])]
    assert len(escalated) >= DOOMED_CASES - 1, f"only {len(escalated)} of {DOOMED_CASES} escalated"
    for case_id in set(doomed) - set(escalated):
        (passed,) = [d for d in by_case[case_id] if isinstance(d, PassDecision)]
        accepts = {v.validator_id for v in passed.votes if v.vote is Vote.ACCEPT}
        assert policy.threshold.accepts is not None
        assert len(accepts - set(policy.red_team_ids)) >= policy.threshold.accepts, passed
        assert set(policy.red_team_ids) <= accepts, passed
    for case_id in escalated:
        (packet,) = [d for d in by_case[case_id] if isinstance(d, EscalationPacket)]
        assert len(packet.attempts) == policy.max_attempts
        assert [a.candidate.attempt for a in packet.attempts] == [1, 2, 3]
        assert len({a.candidate.candidate_id for a in packet.attempts}) == 3
        for record in packet.attempts:
            assert record.verdicts, record
            assert all(v.candidate_id == record.candidate.candidate_id for v in record.verdicts)
        assert packet.policy == policy.name
        assert packet.policy_version == policy.version

    for d in decisions:
        if isinstance(d, PassDecision):
            assert d.policy_version == policy.version
            assert 0 < d.confidence <= 1
            assert {v.validator_id for v in d.votes} <= {s.id for s in policy.validators}

    # Each candidate judged once per validator group, including the group of two instances.
    verdicts = []
    for raw in await read_topics(settings, [names.verdicts], idle_s=3.0):
        with contextlib.suppress(WireFormatError):  # skip the garbage this test injected
            verdicts.append(codec.decode_as(raw, Verdict))
    per_group = Counter((v.validator_id, v.candidate_id) for v in verdicts)
    assert per_group, "no verdicts read back"
    assert max(per_group.values()) == 1, per_group.most_common(3)

    letters = [
        codec.decode_as(v, DeadLetter)
        for v in await read_topics(settings, [names.deadletter], idle_s=3.0)
    ]
    reasons = Counter(letter.reason for letter in letters)
    malformed = [x for x in letters if x.reason is DeadLetterReason.MALFORMED]
    assert {x.source_topic for x in malformed} == {names.candidates, names.verdicts}
    assert {x.original for x in malformed} == {b"\x00garbage", b"\xc3\x01" + b"\x00" * 12}
    assert all(x.detail for x in letters)
    unknown_policy_letters = [x for x in letters if x.reason is DeadLetterReason.UNKNOWN_POLICY]
    assert len(unknown_policy_letters) == 1
    orphan = codec.decode_as(unknown_policy_letters[0].original, Candidate)
    assert orphan.candidate_id == unknown_policy.candidate_id
    # The rogue group is listed in no policy: it judged nothing, so nothing of it to refuse.
    rogue = [x for x in letters if x.reason is DeadLetterReason.UNKNOWN_VALIDATOR]
    assert rogue == []
    _, rogue_text = await scrape(procs.metrics_ports["validator-rogue-0"])
    skipped = 'ratifier_validator_skipped_total{validator="rogue",why="not_listed"}'
    assert value(rogue_text, skipped) >= NORMAL_CASES + DOOMED_CASES
    # Its only verdict: for the candidate of a policy no validator knows (judged, not lost).
    verdicts = [line for line in rogue_text.splitlines()
                if line.startswith("ratifier_validator_verdicts_total{")]  # fmt: skip
    assert sum(float(line.rsplit(" ", 1)[1]) for line in verdicts) <= 1
    assert reasons[DeadLetterReason.PROCESSING_ERROR] == 0

    # Every record the tally wrote names the worker and the engine that wrote it.
    written = await read_records(settings, [*names.decisions, names.deadletter], idle_s=2.0)
    assert written
    tally_id = procs.worker_id(ProcessSpec.tally())
    for record in written:
        headers = dict(record.headers)
        assert headers["ratifier-worker"] == tally_id.encode()
        assert headers["ratifier-engine"] == settings.tally_engine.encode()

    # The tally's endpoint, on either engine: ready, and counting what it did.
    port = procs.metrics_ports["tally"]
    assert (await scrape(port, "/readyz"))[0] == 200
    status, text = await scrape(port)
    assert status == 200
    candidates = value(text, 'ratifier_tally_records_total{kind="candidate"}')
    assert candidates >= NORMAL_CASES + DOOMED_CASES
    assert value(text, 'ratifier_tally_decisions_total{outcome="pass"}') == summary.passed
    assert value(text, 'ratifier_dead_letters_total{reason="UNKNOWN_VALIDATOR"}') == len(rogue)
