"""``ratifier outcomes tail | show`` and ``watch --format table``, as subprocesses, on records
written to the real topics."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames
from ratifier.features.outcomes.core import outcome_from_pass
from ratifier.io.kafka import make_producer
from ratifier.ops.fleet import Fleet
from ratifier.schemas import codec
from tests.integration.review_support import pass_decision

pytestmark = pytest.mark.integration


async def ratifier(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ratifier", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _publish(settings: Settings) -> None:
    """Pass decisions for case-1 (attempt 1: confirmed) and case-2 (attempt 2: corrected), and
    their outcomes, as the tally and the outcomes writer would."""
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="test-outcomes-cli")
    await producer.start()
    try:
        for case, attempt in (("case-1", 1), ("case-2", 2)):
            decision = pass_decision(case, attempt)
            key = case.encode()
            await producer.send_and_wait(names.passed, codec.encode(decision), key=key)
            outcome = outcome_from_pass(decision)
            await producer.send_and_wait(names.outcomes, codec.encode(outcome), key=key)
    finally:
        await producer.stop()


async def test_outcomes_tail_show_and_watch_as_a_table(settings: Settings) -> None:
    await _publish(settings)

    code, out, err = await ratifier(settings, "outcomes", "tail")
    assert code == 0, err
    # Two cases on two partitions (keyed by case id): no order between them.
    assert sorted(json.loads(line)["case_id"] for line in out.splitlines()) == ["case-1", "case-2"]

    code, out, err = await ratifier(settings, "outcomes", "tail", "--kind", "corrected")
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["corrected"]

    code, out, err = await ratifier(settings, "outcomes", "tail", "--format", "table")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["time", "outcome", "case", "reviewer"]
    assert sorted(row.split()[1:4] for row in rows) == [
        ["confirmed", "case-1", "auto"], ["corrected", "case-2", "auto"]
    ]  # fmt: skip

    code, out, err = await ratifier(settings, "outcomes", "show", "case-2")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["case_id"], shown["kind"], shown["attempt"]) == ("case-2", "corrected", 2)

    code, out, err = await ratifier(settings, "outcomes", "show", "case-9")
    assert (code, out) == (1, "")
    assert "case case-9 has no outcome" in err

    args = ("watch", "--from-beginning", "--limit", "2", "--format", "table")
    code, out, err = await ratifier(settings, *args)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["time", "decision", "case", "att", "policy"]
    assert sorted(row.split()[1:4] for row in rows) == [
        ["pass", "case-1", "1"], ["pass", "case-2", "2"]
    ]  # fmt: skip
    assert all("confidence 0.900" in row for row in rows)
