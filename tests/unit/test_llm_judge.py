"""LLMJudge against a real local HTTP server that speaks the chat-completions API."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from ratifier.core.errors import ConfigError, ValidatorError, ValidatorTimeout
from ratifier.core.models import Candidate, PeerVerdict, Reason, Severity, Span, Vote
from ratifier.io.rate_limits import Budget, LocalBuckets, RateLimiter
from ratifier.validators.builtin import LLMJudge
from ratifier.validators.builtin.llm_judge import backoff_s, parse_verdict, retry_after_s
from ratifier.validators.runtime import Peers, judge_safely, reporting_to

KEY_ENV = "RATIFIER_TEST_LLM_KEY"
SECRET = "sk-test-do-not-leak-0123456789"


def make_candidate(content: str = "Paris is the capital of France.") -> Candidate:
    return Candidate(
        case_id="case-7",
        attempt=2,
        candidate_id="cand-7-2",
        policy="default",
        category="geography",
        query="What is the capital of France?",
        content=content,
        producer="unit",
        produced_at_ms=0,
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeChatServer:
    """What the server answers next; tests set the fields, then inspect ``received``."""

    url: str = ""
    status: int = 200
    answer: str | None = '{"vote": "ACCEPT", "confidence": 0.9, "severity": null, "reasons": []}'
    finish_reason: str = "stop"
    raw_body: bytes | None = None  # sent as is instead of a completion
    stall: bool = False
    # Answered first, one a request: (status, headers), with an error body.
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hang_ups: int = 0  # requests answered by closing the connection, before the failures
    received: list[Received] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.monotonic() of each request
    release: asyncio.Event = field(default_factory=asyncio.Event)
    usage: dict[str, int] | None = None  # the completion's token counts, when set

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(Received(request.path, dict(request.headers), body))
        self.received_at.append(time.monotonic())
        if self.hang_ups:
            self.hang_ups -= 1
            assert request.transport is not None
            request.transport.close()  # the client sees the connection closed, no answer
            return web.Response()
        if self.failures:
            status, headers = self.failures.pop(0)
            return web.json_response({"error": "busy"}, status=status, headers=headers)
        if self.stall:
            # Held until the test ends, so a client timeout is what ends the request.
            await asyncio.wait_for(self.release.wait(), 10)
        if self.raw_body is not None:
            return web.Response(status=self.status, body=self.raw_body)
        completion = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": self.finish_reason,
                }
            ],
        }
        if self.usage is not None:
            completion["usage"] = self.usage
        return web.json_response(completion, status=self.status)


@pytest.fixture
async def server() -> AsyncIterator[FakeChatServer]:
    fake = FakeChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}/v1"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


@pytest.fixture
async def make_judge(server: FakeChatServer) -> AsyncIterator[Callable[..., LLMJudge]]:
    judges: list[LLMJudge] = []

    def factory(**kwargs: Any) -> LLMJudge:
        kwargs.setdefault("base_url", server.url)
        kwargs.setdefault("model", "judge-model")
        kwargs.setdefault("api_key_env", KEY_ENV)
        judge = LLMJudge(**kwargs)
        judges.append(judge)
        return judge

    yield factory
    for judge in judges:
        await judge.aclose()


# --- the request ----------------------------------------------------------------------------


async def test_request_shape_with_api_key(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    judge = make_judge(temperature=0.2, max_tokens=100)
    await judge(make_candidate())
    (request,) = server.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    body = request.body
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 100
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system"
    assert "judge" in system["content"]
    assert user["role"] == "user"
    for text in ("Paris is the capital of France.", "What is the capital of France?", "geography"):
        assert text in user["content"]
    assert "JSON" in user["content"]  # OpenAI's JSON mode requires the word in the messages


async def test_no_auth_header_without_env_and_no_json_mode(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    await make_judge(json_mode=False)(make_candidate())
    (request,) = server.received
    assert "Authorization" not in request.headers
    assert "response_format" not in request.body


async def test_custom_prompt_template(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    template = 'Attempt {attempt} [{category}] Q={query} A={content} -> JSON {{"vote": ...}}'
    await make_judge(prompt_template=template, system_prompt="Be terse.")(make_candidate("x"))
    system, user = server.received[0].body["messages"]
    assert system["content"] == "Be terse."
    expected = 'Attempt 2 [geography] Q=What is the capital of France? A=x -> JSON {"vote": ...}'
    assert user["content"] == expected


async def test_a_debate_round_shows_the_other_reviewers(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    peers = Peers(
        3,
        (
            PeerVerdict("you", Vote.ACCEPT, 0.7, None, ()),
            PeerVerdict("peer 1", Vote.REJECT, 0.9, Severity.MAJOR, (Reason("wrong", "Not {x}."),)),
        ),
    )
    await make_judge()(make_candidate(), peers=peers)
    prompt = server.received[0].body["messages"][1]["content"]
    assert "Other reviewers said (round 2):" in prompt
    assert "- you: ACCEPT (confidence 0.70)" in prompt
    assert "- peer 1: REJECT (confidence 0.90, MAJOR)\n    wrong: Not {x}." in prompt
    assert "your own vote for round 3" in prompt
    await make_judge()(make_candidate())  # without peers: the prompt of before
    assert "Other reviewers" not in server.received[1].body["messages"][1]["content"]


async def test_braces_in_content_are_not_format_fields(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    await make_judge()(make_candidate('{"a": "{content}"}'))
    assert '{"a": "{content}"}' in server.received[0].body["messages"][1]["content"]


@pytest.mark.parametrize("template", ["{unknown}", "{query", "{0}"])
def test_bad_prompt_template_is_config_error(template: str) -> None:
    with pytest.raises(ConfigError, match="prompt_template"):
        LLMJudge(base_url="http://127.0.0.1:1/v1", model="m", prompt_template=template)


async def test_full_endpoint_url_is_accepted(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    judge = make_judge(base_url=server.url + "/chat/completions/")
    await judge(make_candidate())
    assert server.received[0].path == "/v1/chat/completions"


# --- parsing answers through the server -----------------------------------------------------

ANSWERS: list[tuple[str, str, Vote, float, Severity | None, list[str]]] = [
    (
        "accept",
        '{"vote": "ACCEPT", "confidence": 0.8, "severity": null, "reasons": []}',
        Vote.ACCEPT,
        0.8,
        None,
        [],
    ),
    (
        "reject",
        '{"vote": "REJECT", "confidence": 0.95, "severity": "CRITICAL", '
        '"reasons": [{"code": "factual_error", "message": "Lyon is not the capital."}]}',
        Vote.REJECT,
        0.95,
        Severity.CRITICAL,
        ["llm.factual_error"],
    ),
    (
        "abstain",
        '{"vote": "abstain", "confidence": 0.1, "severity": null, '
        '"reasons": [{"code": "llm.unknown_topic", "message": "I do not know."}]}',
        Vote.ABSTAIN,
        0.1,
        None,
        ["llm.unknown_topic"],
    ),
    (
        "code fence in prose",
        'Here is my verdict:\n```json\n{"vote": "REJECT", "confidence": 1, '
        '"severity": "minor", "reasons": [{"code": "Style Issue!", "message": "Terse."}]}\n```\n'
        "Hope that helps.",
        Vote.REJECT,
        1.0,
        Severity.MINOR,
        ["llm.style_issue"],
    ),
    (
        "bare object in prose, clamped confidence",
        'Verdict: {"vote": "ACCEPT", "confidence": 7} (sure)',
        Vote.ACCEPT,
        1.0,
        None,
        [],
    ),
    (
        "reject without reasons or severity",
        '{"vote": "REJECT"}',
        Vote.REJECT,
        1.0,
        Severity.MAJOR,
        ["llm.rejected"],
    ),
]


@pytest.mark.parametrize(
    ("answer", "vote", "confidence", "severity", "want_codes"),
    [case[1:] for case in ANSWERS],
    ids=[case[0] for case in ANSWERS],
)
async def test_answers_are_parsed(
    server: FakeChatServer,
    make_judge: Callable[..., LLMJudge],
    answer: str,
    vote: Vote,
    confidence: float,
    severity: Severity | None,
    want_codes: list[str],
) -> None:
    server.answer = answer
    judgement = await make_judge()(make_candidate())
    assert judgement.vote is vote
    assert judgement.confidence == confidence
    assert judgement.severity is severity
    assert [r.code for r in judgement.reasons] == want_codes


async def test_quote_becomes_a_span(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    content = "The capital of France is Lyon."
    server.answer = json.dumps(
        {
            "vote": "REJECT",
            "confidence": 0.9,
            "severity": "MAJOR",
            "reasons": [
                {"code": "factual_error", "message": "Wrong city.", "quote": "Lyon"},
                {"code": "other", "message": "Not found.", "quote": "Marseille"},
            ],
        }
    )
    judgement = await make_judge()(make_candidate(content))
    assert [r.span for r in judgement.reasons] == [Span(25, 29), None]
    assert judgement.reasons[0].message == "Wrong city."


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ("I think it's fine!", "no JSON verdict"),
        ('{"verdict": "ok"}', "no JSON verdict"),
        ('{"vote": "MAYBE", "confidence": 0.5}', "unknown vote"),
        ('{"vote": "REJECT", "severity": "apocalyptic"}', "unknown severity"),
        ('{"vote": "ACCEPT", "confidence": "very"}', "confidence is not a number"),
        ("", "empty"),
    ],
)
async def test_unusable_answers_raise(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge], answer: str, fragment: str
) -> None:
    server.answer = answer
    with pytest.raises(ValidatorError, match=fragment) as info:
        await make_judge()(make_candidate())
    assert not isinstance(info.value, ValidatorTimeout)


async def test_garbage_error_quotes_the_first_200_chars(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.answer = "no verdict here " + "x" * 1000
    with pytest.raises(ValidatorError) as info:
        await make_judge()(make_candidate())
    assert repr(server.answer[:200]) in str(info.value)
    assert server.answer[:201] not in str(info.value)


async def test_truncated_answer_mentions_max_tokens(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.answer, server.finish_reason = '{"vote": "REJ', "length"
    with pytest.raises(ValidatorError, match="max_tokens=64"):
        await make_judge(max_tokens=64)(make_candidate())


async def test_non_json_body_raises(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.raw_body = b"<html>gateway</html>"
    with pytest.raises(ValidatorError, match="not JSON"):
        await make_judge()(make_candidate())


# --- HTTP failures --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_transient_statuses_are_tried_max_tries_times(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge], status: int
) -> None:
    server.status, server.raw_body = status, b'{"error": {"message": "overloaded, try later"}}'
    with pytest.raises(ValidatorError) as info:
        await make_judge(max_tries=3, retry_backoff_s=0.01)(make_candidate())
    assert len(server.received) == 3
    assert f"HTTP {status}" in str(info.value)
    assert "overloaded, try later" in str(info.value)
    assert str(info.value).endswith("(gave up after 3 tries)")


async def test_503_then_200_is_a_verdict(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.failures = [(503, {}), (502, {})]
    judgement = await make_judge(retry_backoff_s=0.01)(make_candidate())
    assert judgement.vote is Vote.ACCEPT
    assert len(server.received) == 3
    assert server.received[0].body == server.received[2].body  # the same request again


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_waits_as_long_as_retry_after_says(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge], form: str
) -> None:
    if form == "seconds":
        retry_after = "1"
    else:  # HTTP dates have whole seconds: 2 s ahead is at least 1 s ahead
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    server.failures = [(429, {"Retry-After": retry_after})]
    # A backoff of its own (0.01 s) far shorter than the server's wish: the wish wins.
    judgement = await make_judge(retry_backoff_s=0.01)(make_candidate())
    assert judgement.vote is Vote.ACCEPT
    first, second = server.received_at
    assert second - first >= 0.95


async def test_tokens_and_a_429_reach_the_runtime_rate_limit(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.failures = [(429, {"Retry-After": "0.2"})]
    server.usage = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    budget = Budget(requests_per_min=600)
    limiter = RateLimiter(budget, LocalBuckets(budget))
    with reporting_to(limiter) as call:
        judgement = await make_judge(retry_backoff_s=0.01)(make_candidate())
    assert judgement.vote is Vote.ACCEPT
    assert (call.tokens, limiter.retry_afters) == (42, 1)


async def test_retries_stop_where_the_runtime_time_limit_would_cut_them(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    # The server asks for a 30 s pause; the runtime gives the call 1 s (its --timeout). The
    # judge gives up at once with the server's error, not a bare runtime timeout after 1 s.
    server.failures = [(503, {"Retry-After": "30"})]
    started = time.monotonic()
    judgement = await judge_safely(make_judge(timeout_s=20), make_candidate(), timeout_s=1.0)
    assert time.monotonic() - started < 0.5
    (reason,) = judgement.reasons
    assert (judgement.vote, reason.code) == (Vote.ABSTAIN, "validator.error")
    assert "HTTP 503" in reason.message
    assert "gave up after 1 try: the next, in 30.00s, would not end within the" in reason.message
    assert len(server.received) == 1


async def test_backoff_retries_fit_in_the_runtime_time_limit(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.status, server.raw_body = 503, b"{}"
    judge = make_judge(max_tries=100, retry_backoff_s=0.1)
    started = time.monotonic()
    judgement = await judge_safely(judge, make_candidate(), timeout_s=1.5)
    assert time.monotonic() - started < 1.5
    (reason,) = judgement.reasons
    assert reason.code == "validator.error"  # its own error, before the runtime's limit
    assert "HTTP 503" in reason.message
    assert "left of the time limit" in reason.message
    assert 2 <= len(server.received) < 10


async def test_a_stalled_try_is_cut_to_the_time_left(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.stall = True
    judgement = await judge_safely(make_judge(timeout_s=20), make_candidate(), timeout_s=0.6)
    (reason,) = judgement.reasons
    assert reason.code == "validator.timeout"
    assert "LLM endpoint" in reason.message  # the judge's message, not the runtime's
    assert "did not answer within 0.5s" in reason.message
    assert len(server.received) == 1


@pytest.mark.parametrize("key_set", [True, False])
async def test_unauthorized_names_the_env_var_never_the_key(
    server: FakeChatServer,
    make_judge: Callable[..., LLMJudge],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    key_set: bool,
) -> None:
    if key_set:
        monkeypatch.setenv(KEY_ENV, SECRET)
    else:
        monkeypatch.delenv(KEY_ENV, raising=False)
    # A gateway that echoes the credentials it refused.
    server.status, server.raw_body = 401, f'{{"error": "bad key {SECRET}"}}'.encode()
    if not key_set:
        server.raw_body = b'{"error": "missing bearer token"}'
    caplog.set_level("DEBUG")
    with pytest.raises(ValidatorError) as info:
        await make_judge()(make_candidate())
    message = str(info.value)
    assert "HTTP 401" in message
    assert KEY_ENV in message
    assert SECRET not in message
    assert SECRET not in caplog.text
    assert len(server.received) == 1  # not retried


@pytest.mark.parametrize("status", [400, 404, 422, 501])
async def test_other_errors_are_not_retried(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge], status: int
) -> None:
    server.status, server.raw_body = status, b'{"error": "no such model"}'
    with pytest.raises(ValidatorError, match=f"HTTP {status}"):
        await make_judge(retry_backoff_s=0.01)(make_candidate())
    assert len(server.received) == 1


async def test_bad_request_hints_json_mode(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.status, server.raw_body = 400, b'{"error": "response_format not supported"}'
    with pytest.raises(ValidatorError, match="json_mode=false"):
        await make_judge()(make_candidate())


async def test_timeout_raises_validator_timeout(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.stall = True
    with pytest.raises(ValidatorTimeout, match=r"0\.2s \(gave up after 2 tries\)"):
        await make_judge(timeout_s=0.2, max_tries=2, retry_backoff_s=0.01)(make_candidate())
    assert len(server.received) == 2


async def test_unreachable_endpoint_raises() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    async with LLMJudge(base_url=url, model="m", timeout_s=5, retry_backoff_s=0.01) as judge:
        with pytest.raises(ValidatorError, match=r"cannot reach.*\(gave up after 4 tries\)"):
            await judge(make_candidate())


async def test_a_connection_closed_mid_answer_is_retried(
    server: FakeChatServer, make_judge: Callable[..., LLMJudge]
) -> None:
    server.hang_ups = 1
    judgement = await make_judge(retry_backoff_s=0.01)(make_candidate())
    assert judgement.vote is Vote.ACCEPT
    assert len(server.received) == 2


# --- Retry-After and backoff ----------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # already past
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, NOW) == seconds


def test_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    for tries, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (30, 8.0)]:
        pauses = [backoff_s(tries, 0.5) for _ in range(200)]
        assert all(ceiling / 2 <= p <= ceiling for p in pauses)
        assert len(set(pauses)) > 100  # jittered


# --- session lifecycle ----------------------------------------------------------------------


async def test_one_session_is_reused_and_closed(server: FakeChatServer) -> None:
    async with LLMJudge(base_url=server.url, model="m", api_key_env="") as judge:
        await judge(make_candidate())
        session = judge._session
        assert session is not None
        await asyncio.gather(*(judge(make_candidate()) for _ in range(5)))
        assert judge._session is session
    assert session.closed
    assert len(server.received) == 6
    await judge.aclose()  # idempotent


def test_repr_has_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    judge = LLMJudge(base_url="http://127.0.0.1:1/v1", model="m", api_key_env=KEY_ENV)
    assert SECRET not in repr(judge)
    assert SECRET not in repr(vars(judge))


# --- parse_verdict without HTTP -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "vote", "confidence"),
    [
        ('<think>maybe {"vote": "REJECT"}?</think>{"vote": "ACCEPT"}', Vote.ACCEPT, 1.0),
        ('{"vote": "ACCEPT", "confidence": -3}', Vote.ACCEPT, 0.0),
        ('{"vote": "ACCEPT", "confidence": "0.75"}', Vote.ACCEPT, 0.75),
        ('{"vote": "ACCEPT", "confidence": "80%"}', Vote.ACCEPT, 0.8),
        ('{"reasons": [{"code": "a"}], "vote": " reject "}', Vote.REJECT, 1.0),
    ],
)
def test_parse_verdict(text: str, vote: Vote, confidence: float) -> None:
    judgement = parse_verdict(text)
    assert judgement.vote is vote
    assert judgement.confidence == pytest.approx(confidence)


def test_parse_verdict_drops_severity_unless_rejecting() -> None:
    judgement = parse_verdict('{"vote": "ACCEPT", "severity": "CRITICAL"}')
    assert judgement.severity is None


def test_parse_verdict_takes_reason_strings_and_limits_them() -> None:
    reasons = [f"reason {i}" for i in range(30)]
    judgement = parse_verdict(json.dumps({"vote": "REJECT", "reasons": reasons}))
    assert len(judgement.reasons) == 10
    assert judgement.reasons[0].code == "llm.rejected"
    assert judgement.reasons[0].message == "reason 0"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": ""},
        {"timeout_s": 0},
        {"timeout_s": "30"},
        {"temperature": -1},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"json_mode": "yes"},
        {"max_tries": 0},
        {"max_tries": 2.5},
        {"retry_backoff_s": -1},
    ],
)
def test_bad_config(kwargs: dict[str, Any]) -> None:
    params: dict[str, Any] = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs}
    with pytest.raises(ConfigError):
        LLMJudge(**params)
