"""End to end, as users run it: the demo's tally, validators and generator escalate some cases;
`ratifier review serve` and `ratifier outcomes run` run beside them; reviewers resolve the
escalations in the browser, with the CLI and through the API. Every case then has exactly one
outcome on <prefix>.outcomes, and the trusted store holds exactly the confirmed and corrected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from ratifier.app.configs import review_config
from ratifier.app.demo.generator import chance
from ratifier.app.demo.runner import demo_content, demo_processes
from ratifier.core.config import Settings
from ratifier.core.models import EscalationPacket, Outcome, OutcomeClass, PassDecision
from ratifier.core.topics import TopicNames
from ratifier.features.review.core import Action, load_reviewers
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.io.admin import group_member_count
from ratifier.io.client import Client
from ratifier.io.redis_client import connect
from ratifier.io.testing import read_records, wait_until
from ratifier.io.trusted_store import TrustedStore
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec
from tests.integration.monitor_support import free_port, scrape
from tests.integration.review_browser import ReviewerBrowser, require_chromium
from tests.integration.review_support import redis_for, write_reviewers

pytestmark = pytest.mark.integration
T = TypeVar("T")
logger = logging.getLogger(__name__)

NORMAL_CASES = 10
DOOMED_CASES = 5  # every attempt bad: escalated after the policy's last attempt


async def do(call: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(call, *args)


@pytest.fixture
async def pipeline(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Settings, dict[str, str], Fleet, int, int]]:
    require_chromium()
    tokens = write_reviewers(tmp_path, "ann", "bob", "cli-carol")
    tuned = settings.with_overrides(
        hold_ms=4_000, tick_interval_s=0.2, review_tokens_file=tmp_path / "reviewers.txt"
    )
    logs = tuned.state_dir / "e2e-review" / tuned.topic_prefix
    core = Fleet(Fleet.env_for(tuned), logs)
    port, metrics_port = free_port(), free_port()
    human = Fleet(
        {
            **Fleet.env_for(tuned),
            "RATIFIER_REVIEW_TOKENS_FILE": str(tuned.review_tokens_file),
        },
        logs,
        metrics_port=metrics_port,  # the outcomes runtime's /metrics (started first)
    )
    async with redis_for(tuned):  # clears the prefix's keys once every process has stopped
        await core.start(*demo_processes())
        await human.start(
            ProcessSpec("outcomes", ("outcomes", "run")),
            ProcessSpec("review", ("review", "serve", "--port", str(port))),
        )
        try:
            await core.wait_ready(tuned)
            names = TopicNames.from_settings(tuned)

            async def human_side_ready() -> bool:
                assert not human.exited(), f"exited: {human.exited()} (logs in {logs})"
                try:
                    status, _ = await scrape(port, "/healthz")
                except aiohttp.ClientError:
                    return False
                if status != 200:
                    return False
                groups = (names.outcomes_group, names.trusted_group, names.review_feed_group)
                return all([await group_member_count(tuned, g) == 1 for g in groups])

            await wait_until(human_side_ready, 90, "outcomes runtime and review page")
            yield tuned, tokens, human, port, metrics_port
        finally:
            await human.stop()
            await core.stop()


async def test_every_case_ends_with_one_outcome_after_review(
    pipeline: tuple[Settings, dict[str, str], Fleet, int, int], tmp_path: Path
) -> None:
    settings, tokens, human, port, metrics_port = pipeline
    names = TopicNames.from_settings(settings)
    finals: dict[str, PassDecision | EscalationPacket] = {}
    cases: list[str] = []
    async with Client(settings, producer="e2e-review") as client:

        async def collect() -> None:
            async for decision in client.decisions(from_beginning=True):
                if isinstance(decision, PassDecision | EscalationPacket):
                    finals[decision.case_id] = decision

        watcher = asyncio.create_task(collect())
        for i in range(NORMAL_CASES + DOOMED_CASES):
            doomed = i >= NORMAL_CASES
            good = not doomed and chance("first", settings.topic_prefix, i) < 0.6
            query, content = demo_content(i, good)
            metadata = {"truth": "accept" if good else "reject"}
            if doomed:
                metadata["next_truth"] = "reject"
            candidate = client.candidate(content, query=query, metadata=metadata)
            cases.append(candidate.case_id)
            await client.send(candidate)

        async def all_final() -> bool:
            return set(finals) >= set(cases)

        await wait_until(all_final, 180, "every case's final decision")
        watcher.cancel()
    escalated = sorted(c for c in cases if isinstance(finals[c], EscalationPacket))
    passed = sorted(c for c in cases if isinstance(finals[c], PassDecision))
    # A doomed attempt passes only if three voters and the red team all err (p ~ 0.00035 each):
    # one such pass is tolerated; the review below needs four escalations.
    assert len(escalated) >= DOOMED_CASES - 1, escalated

    async with contextlib.aclosing(connect(settings)) as redis:  # the fixture clears the keys
        queue = ReviewQueue(
            redis, review_config(settings), load_reviewers(settings.review_tokens_file)
        )
        store = TrustedStore.from_settings(redis, settings)

        async def all_queued() -> bool:
            return (await queue.stats()).length == len(escalated)

        await wait_until(all_queued, 60, "every escalation in the review queue")
        expected: dict[str, OutcomeClass] = {}

        # Two in the browser: a correction and a confirmation.
        browser = await do(ReviewerBrowser, f"http://127.0.0.1:{port}")
        try:
            await do(browser.log_in, tokens["ann"])
            assert await do(browser.text_of, "#queue-length") == str(len(escalated))
            first = await do(browser.claim_next)
            assert first in escalated
            await do(browser.correct, "Refunds need a receipt and 30 days.", "both wrong")
            expected[first] = OutcomeClass.CORRECTED
            second = await do(browser.claim_next)
            assert second in escalated
            await do(browser.confirm, 1)
            expected[second] = OutcomeClass.CONFIRMED
        finally:
            await do(browser.close)

        rest = [c for c in escalated if c not in expected]
        # One with the CLI, as a reviewer's shell would.
        token_file = tmp_path / "carol.token"
        token_file.write_text(tokens["cli-carol"] + "\n")
        packet = finals[rest[0]]
        assert isinstance(packet, EscalationPacket)
        code, out = await ratifier(
            settings, "review", "resolve", rest[0], "--token-file", str(token_file),
            "--confirm", packet.attempts[-1].candidate.candidate_id,
        )  # fmt: skip
        assert code == 0, out
        assert f"case {rest[0]}: confirm by cli-carol" in out
        expected[rest[0]] = OutcomeClass.CONFIRMED
        # The rest through the API: unresolved, then corrections.
        await queue.resolve(rest[1], "bob", Action.UNRESOLVED, note="needs legal",
                            require_claim=False)  # fmt: skip
        expected[rest[1]] = OutcomeClass.UNRESOLVED
        for case_id in rest[2:]:
            await queue.resolve(case_id, "bob", Action.CORRECT, text="Within 30 days.",
                                note="api", require_claim=False)  # fmt: skip
            expected[case_id] = OutcomeClass.CORRECTED
        # A second resolution of a resolved case is refused, from the CLI too.
        code, out = await ratifier(
            settings, "review", "resolve", rest[1], "--token-file", str(token_file),
            "--unresolved", "again",
        )  # fmt: skip
        assert code == 2
        assert "resolved already by bob" in out

        outcomes: dict[str, list[Outcome]] = {}

        async def every_case_has_an_outcome() -> bool:
            assert not human.exited(), human.exited()
            records = await read_records(settings, [names.outcomes], 1.0)
            outcomes.clear()
            for r in records:
                o = codec.decode_as(r.value or b"", Outcome)
                outcomes.setdefault(o.case_id, []).append(o)
            return set(outcomes) >= set(cases)

        await wait_until(every_case_has_an_outcome, 60, "an outcome for every case")
        await asyncio.sleep(2.0)  # a (wrong) second outcome would show by now
        await every_case_has_an_outcome()
        assert Counter({c: len(v) for c, v in outcomes.items()}) == {c: 1 for c in cases}
        for case_id in passed:
            (o,) = outcomes[case_id]
            d = finals[case_id]
            assert isinstance(d, PassDecision)
            assert o.reviewer == "auto"
            assert o.resolves == (d.decision_id,)
            assert o.kind is (OutcomeClass.CONFIRMED if d.attempt == 1 else OutcomeClass.CORRECTED)
        for case_id, kind in expected.items():
            (o,) = outcomes[case_id]
            assert o.kind is kind
            assert o.reviewer != "auto"
            assert o.resolves == (finals[case_id].decision_id,)

        trusted_cases = {c for c, (o,) in outcomes.items() if o.kind is not OutcomeClass.UNRESOLVED}

        async def store_complete() -> bool:
            return await store.count() >= len(trusted_cases)

        await wait_until(store_complete, 30, "the trusted store to catch up")
        assert set(await store.case_ids()) == trusted_cases
        assert rest[1] not in trusted_cases

        code, out = await ratifier(settings, "answer", first)
        assert code == 0
        assert "Refunds need a receipt and 30 days." in out
        code, out = await ratifier(settings, "answer", rest[1])
        assert code == 1
        assert "has no trusted answer" in out

        _, metrics = await scrape(port)
        assert "ratifier_review_queue_length 0.0" in metrics
        ratio = next(
            line for line in metrics.splitlines()
            if line.startswith("ratifier_review_auto_agreement_ratio ")
        )  # fmt: skip
        assert 0.0 <= float(ratio.split()[1]) <= 1.0
        # The outcomes runtime's own endpoint (RATIFIER_METRICS_PORT): what it wrote, by origin.
        _, written = await scrape(metrics_port)
        counts = {
            line.split("{", 1)[1].split("}")[0]: float(line.split()[-1])
            for line in written.splitlines()
            if line.startswith("ratifier_outcomes_written_total{")
        }
        assert sum(counts.values()) == len(cases)
        reviewed = sum(v for k, v in counts.items() if 'origin="review"' in k)
        assert reviewed == len(escalated)
        assert "ratifier_review_queue_length 0.0" in written
        logger.info(
            "cases %d: passed %d, escalated %d (browser 2, CLI 1, API %d); outcomes %d, trusted %d;"
            " %s", len(cases), len(passed), len(escalated), len(rest) - 1, len(outcomes),
            len(trusted_cases), ratio,
        )  # fmt: skip


async def ratifier(settings: Settings, *args: str) -> tuple[int, str]:
    """Run the ratifier CLI as a user would; (exit code, stdout and stderr)."""
    env = {
        **os.environ,
        **Fleet.env_for(settings),
        "RATIFIER_REVIEW_TOKENS_FILE": str(settings.review_tokens_file),
        "PYTHONSAFEPATH": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ratifier", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()
