"""The review page's HTTP side against the real redis: tokens, 401s, refusals, metrics."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from ratifier.app.configs import review_config
from ratifier.core.config import Settings
from ratifier.core.models import Reason, Span, Verdict, Vote
from ratifier.features.review.core import load_reviewers
from ratifier.features.review.io.metrics import AgreementStore, ReviewGauges
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.features.review.io.sessions import ReviewSessions
from ratifier.features.review.runtime.web import (
    COOKIE,
    ReviewApp,
    ReviewService,
    _reason_spans,
    highlight,
)
from ratifier.io.testing import self_signed_certificate
from tests.integration.monitor_support import free_port
from tests.integration.review_support import packet, redis_for, write_reviewers

pytestmark = pytest.mark.integration


@pytest.fixture
async def web(
    stack: object, base_settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[TestClient, ReviewQueue, Redis, dict[str, str]]]:
    tokens = write_reviewers(tmp_path, "ann", "bob")
    settings = base_settings.with_overrides(
        topic_prefix=f"w{uuid.uuid4().hex[:10]}", review_tokens_file=tmp_path / "reviewers.txt"
    )
    async with redis_for(settings) as redis:
        reviewers = load_reviewers(settings.review_tokens_file)
        queue = ReviewQueue(redis, review_config(settings), reviewers)
        await queue.ensure_groups()
        registry = CollectorRegistry()
        gauges = ReviewGauges(registry, queue, AgreementStore(redis, review_config(settings)))
        app = ReviewApp(
            queue, reviewers, gauges, registry, ReviewSessions(redis, review_config(settings))
        )
        async with TestClient(TestServer(app.app)) as client:
            yield client, queue, redis, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def state(redis: Redis, queue: ReviewQueue) -> tuple[object, ...]:
    keys = sorted([k async for k in redis.scan_iter(match=f"{queue.queue_key.split(':')[0]}:*")])
    return (keys, await redis.xlen(queue.queue_key), await redis.xlen(queue.resolutions_key),
            await redis.xpending(queue.queue_key, "reviewers"))  # fmt: skip


async def test_wrong_or_missing_tokens_get_401_and_change_nothing(
    web: tuple[TestClient, ReviewQueue, Redis, dict[str, str]],
) -> None:
    client, queue, redis, tokens = web
    await queue.enqueue(packet("case-a"))
    before = await state(redis, queue)
    for headers in ({}, bearer("not-a-token-at-all-xx"), bearer(tokens["ann"] + "x")):
        for method, path, data in (
            ("POST", "/claim", None),
            ("POST", "/item/case-a/resolve", {"action": "unresolved", "note": "x"}),
        ):
            response = await client.request(method, path, data=data, headers=headers,
                                             allow_redirects=False)  # fmt: skip
            assert response.status == 401, (headers, path)
        page = await client.get("/", headers=headers, allow_redirects=False)
        assert page.status in (303, 401)
    wrong_login = await client.post("/login", data={"token": "guess-guess-guess-1"})
    assert wrong_login.status == 401
    assert "guess" not in await wrong_login.text()  # the token is not echoed
    assert await state(redis, queue) == before


async def test_login_claim_and_resolve_through_the_pages(
    web: tuple[TestClient, ReviewQueue, Redis, dict[str, str]],
) -> None:
    client, queue, _redis, tokens = web
    p = packet("case-a")
    await queue.enqueue(p)
    login = await client.post("/login", data={"token": tokens["ann"]}, allow_redirects=False)
    assert login.status == 303
    assert login.cookies[COOKIE]["httponly"]
    index = await client.get("/")
    assert index.status == 200
    text = await index.text()
    assert 'id="queue-length">1<' in text
    assert "case-a" in text
    claimed = await client.post("/claim", allow_redirects=False)
    assert claimed.headers["Location"] == "/item/case-a"
    page = await (await client.get("/item/case-a")).text()
    assert page.count('class="card attempt"') == 2
    assert page.count('<tr class="vote">') == 6
    assert '<mark title="fact: fact.wrong_number">' in page  # the rejected span, highlighted
    assert 'id="correct-form"' in page  # ann holds the claim: the actions are shown
    # bob sees the packet but no actions, and cannot resolve ann's claim.
    bob_page = await (await client.get("/item/case-a", headers=bearer(tokens["bob"]))).text()
    assert "claimed by ann" in bob_page
    assert 'id="correct-form"' not in bob_page
    refused = await client.post("/item/case-a/resolve", headers=bearer(tokens["bob"]),
                                data={"action": "unresolved", "note": "x"})  # fmt: skip
    assert refused.status == 409
    assert "claimed by ann" in await refused.text()
    empty = await client.post("/item/case-a/resolve", data={"action": "correct", "text": " ",
                                                            "note": "n"})  # fmt: skip
    assert empty.status == 400
    assert "empty" in await empty.text()
    done = await client.post(
        "/item/case-a/resolve", allow_redirects=False,
        data={"action": "confirm", "candidate_id": p.attempts[1].candidate.candidate_id},
    )  # fmt: skip
    assert done.status == 303
    again = await client.post("/item/case-a/resolve", data={"action": "unresolved", "note": "x"})
    assert again.status == 409
    assert "resolved already by ann" in await again.text()
    unknown = await client.get("/item/no-such-case")
    assert unknown.status == 404
    assert (await client.post("/claim", allow_redirects=False)).headers["Location"] == "/?empty=1"


async def test_metrics_show_the_queue(
    web: tuple[TestClient, ReviewQueue, Redis, dict[str, str]],
) -> None:
    client, queue, _, _ = web
    await queue.enqueue(packet("case-a"))
    await queue.enqueue(packet("case-b"))
    text = await (await client.get("/metrics")).text()
    assert "ratifier_review_queue_length 2.0" in text
    age = next(
        x for x in text.splitlines() if x.startswith("ratifier_review_queue_oldest_age_seconds ")
    )
    assert float(age.split()[1]) >= 5.0  # the packets were escalated 5 s before now
    assert "ratifier_review_auto_agreement_ratio NaN" in text


def test_highlight_marks_spans_and_escapes() -> None:
    def rejection(validator: str, code: str, span: Span) -> Verdict:
        reasons = (Reason(code, "m", span),)
        return Verdict("c", 1, "x", validator, "1", Vote.REJECT, 1.0, None, reasons, 1, 1)

    verdicts = [rejection("v1", "a", Span(0, 4)), rejection("v2", "b", Span(2, 99))]

    out = highlight("<b>&x", _reason_spans(verdicts))
    assert out == (
        '<mark title="v1: a">&lt;b</mark><mark title="v1: a; v2: b">&gt;&amp;</mark>'
        '<mark title="v2: b">x</mark>'
    )
    assert highlight("plain", []) == "plain"


async def test_case_ids_with_any_character_have_working_links(
    web: tuple[TestClient, ReviewQueue, Redis, dict[str, str]],
) -> None:
    client, queue, _, tokens = web
    odd = 'case/\u03b1 b?&"x'  # a slash, a non-ASCII letter, a space, query and HTML chars
    await queue.enqueue(packet(odd))
    index = await (await client.get("/", headers=bearer(tokens["ann"]))).text()
    assert 'href="/item/case%2F%CE%B1%20b%3F%26%22x"' in index
    claimed = await client.post("/claim", headers=bearer(tokens["ann"]), allow_redirects=False)
    location = claimed.headers["Location"]
    page = await client.get(location, headers=bearer(tokens["ann"]))
    assert page.status == 200
    assert "case/\u03b1 b?&amp;&quot;x" in await page.text()
    done = await client.post(
        f"{location}/resolve", headers=bearer(tokens["ann"]),
        data={"action": "unresolved", "note": "odd"}, allow_redirects=False,
    )  # fmt: skip
    assert done.status == 303
    assert (await queue.require(odd)).state == "resolved"


async def test_the_session_cookie_is_not_the_token_and_logout_ends_it(
    web: tuple[TestClient, ReviewQueue, Redis, dict[str, str]],
) -> None:
    client, queue, redis, tokens = web
    login = await client.post("/login", data={"token": tokens["ann"]}, allow_redirects=False)
    session = login.cookies[COOKIE].value
    assert session != tokens["ann"]
    assert len(session) >= 40
    assert login.cookies[COOKIE]["samesite"] == "Strict"
    assert not login.cookies[COOKIE]["secure"]  # plain HTTP here; Secure under TLS (below)
    # Redis holds neither the token nor the session id, only the id's hash.
    prefix = queue.queue_key.split(":")[0]
    stored = [k async for k in redis.scan_iter(match=f"{prefix}:review:session:*")]
    assert len(stored) == 1
    assert session.encode() not in stored[0]
    assert await redis.get(stored[0]) == b"ann"
    assert (await client.get("/", allow_redirects=False)).status == 200
    assert (await client.post("/logout", allow_redirects=False)).status == 303
    replayed = await client.get(
        "/", headers={"Cookie": f"{COOKIE}={session}"}, allow_redirects=False
    )
    assert replayed.status == 401  # the session is gone, not just the browser's cookie
    assert [k async for k in redis.scan_iter(match=f"{prefix}:review:session:*")] == []


@pytest.fixture
def page_cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path, "page")


async def test_the_page_serves_https_with_secure_cookies(
    stack: object, base_settings: Settings, tmp_path: Path, page_cert: tuple[Path, Path]
) -> None:
    cert, key = page_cert
    tokens = write_reviewers(tmp_path, "ann")
    settings = base_settings.with_overrides(
        topic_prefix=f"w{uuid.uuid4().hex[:10]}", review_tokens_file=tmp_path / "reviewers.txt"
    )
    port = free_port()
    service = ReviewService(
        review_config(settings), host="127.0.0.1", port=port, feed=False, cert=cert, key=key
    )
    trust = ssl.create_default_context(cafile=str(cert))
    async with redis_for(settings):
        await service.start()
        try:
            async with aiohttp.ClientSession() as http:
                health = await http.get(f"https://127.0.0.1:{port}/healthz", ssl=trust)
                assert health.status == 200
                login = await http.post(
                    f"https://127.0.0.1:{port}/login",
                    data={"token": tokens["ann"]},
                    ssl=trust,
                    allow_redirects=False,
                )
                assert login.status == 303
                assert login.cookies[COOKIE]["secure"]
                with pytest.raises(aiohttp.ClientError):
                    await http.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            await service.stop()
