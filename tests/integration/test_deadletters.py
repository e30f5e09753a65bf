"""``ratifier deadletters``: dead letters shown decoded, fixable ones sent again to their topic."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson
import pytest

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, DeadLetter, DeadLetterReason, Verdict, Vote, now_ms
from ratifier.core.topics import TopicNames
from ratifier.io.deadletters import replay
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_records
from ratifier.ops.fleet import Fleet
from ratifier.schemas import codec

pytestmark = pytest.mark.integration

CANDIDATE = Candidate(
    case_id="dl-1",
    attempt=1,
    candidate_id="dl-1-1",
    policy="later",
    category="general",
    query="q",
    content="an answer for a policy loaded later",
    producer="it",
    produced_at_ms=1,
)
VERDICT = Verdict(
    case_id="dl-2",
    attempt=1,
    candidate_id="dl-2-1",
    validator_id="newcomer",
    validator_version="1",
    vote=Vote.ACCEPT,
    confidence=0.9,
    severity=None,
    reasons=(),
    latency_ms=1,
    produced_at_ms=1,
)


def letter(original: bytes, topic: str, reason: DeadLetterReason, offset: int) -> DeadLetter:
    return DeadLetter(original, topic, 0, offset, reason, f"{reason.value} in a test", now_ms())


async def write_dead_letters(settings: Settings) -> None:
    names = TopicNames.from_settings(settings)
    letters = [
        letter(codec.encode(CANDIDATE), names.candidates, DeadLetterReason.UNKNOWN_POLICY, 5),
        letter(b"\x00garbage", names.verdicts, DeadLetterReason.MALFORMED, 6),
        letter(codec.encode(VERDICT), names.verdicts, DeadLetterReason.UNKNOWN_VALIDATOR, 7),
    ]
    producer = make_producer(settings, client_id="it-deadletters")
    await producer.start()
    try:
        for item in letters:
            await producer.send_and_wait(names.deadletter, codec.encode(item), key=b"k")
    finally:
        await producer.stop()


async def test_replay_sends_fixable_records_again_keyed_by_case(settings: Settings) -> None:
    names = TopicNames.from_settings(settings)
    await write_dead_letters(settings)

    dry = await replay(settings, {DeadLetterReason.UNKNOWN_POLICY}, dry_run=True)
    assert (dry.sent, dry.not_replayable) == (1, 0)
    assert not await read_records(settings, [names.candidates], idle_s=0.5)

    report = await replay(settings, {DeadLetterReason.UNKNOWN_POLICY, DeadLetterReason.MALFORMED})
    assert (report.sent, report.not_replayable) == (1, 1)  # garbage cannot be sent again
    assert report.by_reason == {"UNKNOWN_POLICY": 1}
    (sent,) = await read_records(settings, [names.candidates], idle_s=0.5)
    assert (sent.key, sent.value) == (b"dl-1", codec.encode(CANDIDATE))
    assert not await read_records(settings, [names.verdicts], idle_s=0.5)


async def test_tail_prints_each_dead_letter_decoded(settings: Settings) -> None:
    await write_dead_letters(settings)
    env = {**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ratifier", "--log-level", "warning", "deadletters", "tail",
        "--reason", "UNKNOWN_VALIDATOR", "--reason", "MALFORMED",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line["reason"] for line in lines] == ["MALFORMED", "UNKNOWN_VALIDATOR"]
    malformed, unknown = lines
    assert malformed["record"] is None
    assert malformed["source"].endswith(".verdicts[0]@6")
    assert unknown["record"]["validator_id"] == "newcomer"
    assert unknown["detail"] == "UNKNOWN_VALIDATOR in a test"
