"""A reviewer resolves escalations in a real browser (headless chromium); the outcomes reach
Kafka and the trusted store.

Screenshots go to the test's temporary folder, or to ``RATIFIER_SCREENSHOTS_DIR`` when set
(``RATIFIER_SCREENSHOTS_DIR=docs/images`` refreshes the ones docs/review.md shows).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ratifier.app.configs import outcomes_config, review_config
from ratifier.core.config import Settings
from ratifier.core.models import Outcome, OutcomeClass
from ratifier.core.topics import TopicNames
from ratifier.features.outcomes.runtime import OutcomesService
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.features.review.runtime.web import ReviewService
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_records, wait_until
from ratifier.io.trusted_store import TrustedStore
from ratifier.schemas import codec
from tests.integration.review_browser import ReviewerBrowser, require_chromium
from tests.integration.review_support import packet, redis_for, write_reviewers

pytestmark = pytest.mark.integration
T = TypeVar("T")


async def do(call: Callable[..., T], *args: Any) -> T:
    """A browser call, off the event loop that serves the page (see review_browser)."""
    return await asyncio.to_thread(call, *args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_reviewer_resolves_cases_in_the_browser(settings: Settings, tmp_path: Path) -> None:
    require_chromium()
    shots = Path(os.environ.get("RATIFIER_SCREENSHOTS_DIR") or tmp_path / "shots")
    tokens = write_reviewers(tmp_path, "ann", "bob")
    settings = settings.with_overrides(review_tokens_file=tmp_path / "reviewers.txt")
    names = TopicNames.from_settings(settings)
    packets = [packet(f"order-{n}", attempts=2 + n % 2) for n in range(1, 4)]
    producer = make_producer(settings, client_id="test-browser")
    await producer.start()
    try:
        for p in packets:
            await producer.send_and_wait(names.escalate, codec.encode(p), key=p.case_id.encode())
    finally:
        await producer.stop()

    port = free_port()
    service = ReviewService(review_config(settings), host="127.0.0.1", port=port)
    outcomes = OutcomesService(outcomes_config(settings))
    stop = asyncio.Event()
    async with redis_for(settings) as redis:
        queue = ReviewQueue(redis, review_config(settings), None)
        store = TrustedStore.from_settings(redis, settings)
        await service.start()
        await outcomes.start()
        tasks = [asyncio.create_task(service.run(stop)), asyncio.create_task(outcomes.run(stop))]
        browser = await asyncio.to_thread(ReviewerBrowser, f"http://127.0.0.1:{port}")
        try:

            async def all_queued() -> bool:
                return (await queue.stats()).length == 3

            await wait_until(all_queued, 30, "three escalations queued")

            # No token: the login page. A wrong token: 401, and nothing changes.
            await do(browser.open, "/")
            assert (await do(browser.url)).endswith("/login")
            await do(browser.log_in, "not-the-token-of-anyone")
            assert "401" in await do(browser.text_of, "#error")
            assert (await queue.stats()).length == 3
            assert await redis.xlen(queue.resolutions_key) == 0

            await do(browser.log_in, tokens["ann"])
            assert await do(browser.text_of, "#reviewer") == "reviewer: ann"
            assert await do(browser.text_of, "#queue-length") == "3"
            assert await do(browser.count, "tr.queued") == 3
            await do(browser.screenshot, shots / "review-queue.png")

            resolved: dict[str, str] = {}
            first = await do(browser.claim_next)
            assert first in {p.case_id for p in packets}
            # The packet: every attempt, every vote with its reasons, the rejected spans marked.
            p = next(x for x in packets if x.case_id == first)
            assert await do(browser.count, "div.attempt") == len(p.attempts)
            assert await do(browser.count, "tr.vote") == 3 * len(p.attempts)
            marks = await do(browser.texts_of, "mark")
            assert marks == ["30 days"] * len(p.attempts)
            assert "fact.wrong_number" in await do(browser.text)
            await do(browser.screenshot, shots / "review-case.png")
            await do(
                browser.correct, "Refunds are accepted within 14 days of delivery.",
                "Every attempt said 30 days; the policy says 14.",
            )  # fmt: skip
            assert "Resolved case" in await do(browser.text_of, "#notice")
            resolved[first] = "corrected"

            second = await do(browser.claim_next)
            assert second is not None
            assert second not in resolved
            await do(browser.confirm, 2, "attempt 2 is right")
            resolved[second] = "confirmed"

            third = await do(browser.claim_next)
            assert third is not None
            assert third not in resolved
            await do(browser.unresolved, "The order is not in the policy's scope.")
            resolved[third] = "unresolved"
            assert await do(browser.claim_next) is None
            assert "Nothing is waiting" in await do(browser.text_of, "#notice")
            assert await do(browser.text_of, "#queue-length") == "0"

            async def trusted_two() -> bool:
                return await store.count() == 2 and len(outcomes.writer.decided) == 3

            await wait_until(trusted_two, 30, "three outcomes, two trusted answers")
        finally:
            await do(browser.close)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await outcomes.stop()
            await service.stop()

        written = [
            codec.decode_as(r.value or b"", Outcome)
            for r in await read_records(settings, [names.outcomes], 1.5)
        ]
        assert Counter(o.case_id for o in written) == {c: 1 for c in resolved}
        assert {o.case_id: o.kind.value for o in written} == resolved
        assert {o.reviewer for o in written} == {"ann"}
        by_case = {o.case_id: o for o in written}
        assert by_case[first].content == "Refunds are accepted within 14 days of delivery."
        assert by_case[second].attempt == 2
        trusted = {c: await store.get(c) for c in resolved}
        assert {c for c, o in trusted.items() if o is not None} == {first, second}
        assert trusted[first] == by_case[first]
        assert by_case[third].kind is OutcomeClass.UNRESOLVED
    for name in ("review-queue.png", "review-case.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
