"""The review queue against the real redis-server: feeding, claims, resolutions, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ratifier.app.configs import review_config
from ratifier.core.config import Settings
from ratifier.core.errors import (
    AlreadyResolved,
    InvalidResolution,
    StaleClaim,
    UnknownItem,
    UnknownReviewer,
)
from ratifier.features.review.core import Action, load_reviewers
from ratifier.features.review.io.queue import ReviewQueue
from tests.integration.review_support import packet, redis_for, write_reviewers

pytestmark = pytest.mark.integration
# Short, so the time-out tests are quick; long enough that a claim stays live between the
# steps of a test on a loaded machine.
CLAIM_S = 2.5


@pytest.fixture
async def queue(
    stack: object, base_settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[ReviewQueue, Redis]]:
    import uuid

    write_reviewers(tmp_path, "ann", "bob")
    settings = base_settings.with_overrides(
        topic_prefix=f"q{uuid.uuid4().hex[:10]}",
        review_tokens_file=tmp_path / "reviewers.txt",
        review_claim_s=CLAIM_S,
    )
    async with redis_for(settings) as redis:
        q = ReviewQueue(redis, review_config(settings), load_reviewers(settings.review_tokens_file))
        await q.ensure_groups()
        yield q, redis


async def snapshot(redis: Redis, q: ReviewQueue, case_id: str) -> tuple[object, ...]:
    """Everything a refused action must leave as it was."""
    return (
        await redis.hgetall(q.item_key(case_id)),
        await redis.xrange(q.queue_key),
        await redis.xlen(q.resolutions_key),
        await redis.xpending(q.queue_key, "reviewers"),
    )


async def test_a_redelivered_escalation_is_queued_once(queue: tuple[ReviewQueue, Redis]) -> None:
    q, _ = queue
    p = packet("case-a")
    assert await q.enqueue(p) is True
    assert await q.enqueue(p) is False
    stats = await q.stats()
    assert stats.length == 1
    assert stats.oldest_escalated_at_ms == p.decided_at_ms
    assert stats.oldest_age_s() >= 5.0
    (item,) = await q.waiting()
    assert item.packet == p
    assert item.state == "queued"
    assert item.claimed_by is None


async def test_claims_are_exclusive_and_time_out_back_to_the_queue(
    queue: tuple[ReviewQueue, Redis],
) -> None:
    q, _ = queue
    await q.enqueue(packet("case-a"))
    await q.enqueue(packet("case-b"))
    first = await q.claim("ann")
    assert first is not None
    assert first.case_id == "case-a"
    assert first.claimed_by == "ann"
    again = await q.claim("ann")  # the live claim again, not a second item
    assert again is not None
    assert again.case_id == "case-a"
    second = await q.claim("bob")
    assert second is not None
    assert second.case_id == "case-b"
    assert await q.claim("bob") is not None  # bob's own claim
    # Both claims time out; a claim then takes the oldest timed-out item over.
    await asyncio.sleep(CLAIM_S + 0.2)
    taken = await q.claim("bob")
    assert taken is not None
    assert taken.case_id == "case-a"
    assert taken.claimed_by == "bob"
    with pytest.raises(StaleClaim, match="claimed by bob"):
        await q.resolve("case-a", "ann", Action.UNRESOLVED, note="gone")


async def test_resolutions_and_what_they_leave(queue: tuple[ReviewQueue, Redis]) -> None:
    q, redis = queue
    p = packet("case-a")
    await q.enqueue(p)
    await q.claim("ann")
    resolution = await q.resolve(
        "case-a", "ann", Action.CONFIRM, candidate_id=p.attempts[1].candidate.candidate_id
    )
    assert resolution.action is Action.CONFIRM
    assert (await q.stats()).length == 0
    item = await q.require("case-a")
    assert (item.state, item.resolved_by, item.action) == ("resolved", "ann", "confirm")
    (stored,) = await q.read_resolutions("outcomes-test", pending=False)
    assert stored.resolution == resolution
    assert stored.packet == p
    with pytest.raises(AlreadyResolved, match="by ann"):
        await q.resolve("case-a", "bob", Action.UNRESOLVED, note="late", require_claim=False)
    assert await redis.xlen(q.resolutions_key) == 1


@pytest.mark.parametrize(
    ("reviewer", "case_id", "action", "fields", "error", "message"),
    [
        ("mallory", "case-a", "unresolved", {"note": "x"}, UnknownReviewer, "not on the reviewer"),
        ("ann", "case-zz", "unresolved", {"note": "x"}, UnknownItem, "no review item"),
        ("ann", "case-a", "correct", {"text": "  ", "note": "n"}, InvalidResolution, "empty"),
        ("ann", "case-a", "correct", {"text": "right"}, InvalidResolution, "needs a note"),
        ("ann", "case-a", "confirm", {"candidate_id": "nope"}, InvalidResolution, "no candidate"),
        ("ann", "case-a", "unresolved", {}, InvalidResolution, "needs a reason"),
        ("ann", "case-a", "approve", {}, InvalidResolution, "unknown action"),
        ("bob", "case-a", "unresolved", {"note": "x"}, StaleClaim, "claimed by ann"),
    ],
)
async def test_bad_resolutions_are_refused_and_change_nothing(
    queue: tuple[ReviewQueue, Redis],
    reviewer: str,
    case_id: str,
    action: str,
    fields: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    q, redis = queue
    await q.enqueue(packet("case-a"))
    await q.claim("ann")
    before = await snapshot(redis, q, "case-a")
    with pytest.raises(error, match=message):
        await q.resolve(case_id, reviewer, action, **fields)
    assert await snapshot(redis, q, "case-a") == before


async def test_a_timed_out_claim_is_stale_for_the_page(queue: tuple[ReviewQueue, Redis]) -> None:
    q, redis = queue
    await q.enqueue(packet("case-a"))
    await q.claim("ann")
    await asyncio.sleep(CLAIM_S + 0.2)
    before = await snapshot(redis, q, "case-a")
    with pytest.raises(StaleClaim, match="timed out"):
        await q.resolve("case-a", "ann", Action.UNRESOLVED, note="slow")
    assert await snapshot(redis, q, "case-a") == before
    # Unclaimed (never delivered) items need a claim on the page, not from the CLI.
    await q.enqueue(packet("case-b"))
    with pytest.raises(StaleClaim, match="claim it first"):
        await q.resolve("case-b", "bob", Action.UNRESOLVED, note="x")
    await q.resolve("case-b", "bob", Action.UNRESOLVED, note="x", require_claim=False)


async def test_two_reviewers_resolving_at_once_make_one_resolution(
    queue: tuple[ReviewQueue, Redis],
) -> None:
    q, redis = queue
    for n in range(20):
        await q.enqueue(packet(f"case-{n}"))
    wins: list[str] = []

    async def attempt(case_id: str, reviewer: str) -> None:
        try:
            await q.resolve(
                case_id, reviewer, Action.CORRECT, text=f"by {reviewer}", note="race",
                require_claim=False,
            )  # fmt: skip
            wins.append(reviewer)
        except AlreadyResolved:
            pass

    for n in range(20):
        await asyncio.gather(attempt(f"case-{n}", "ann"), attempt(f"case-{n}", "bob"))
    assert len(wins) == 20
    assert await redis.xlen(q.resolutions_key) == 20
    assert (await q.stats()).length == 0
