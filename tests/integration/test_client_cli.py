"""Through the real broker: the client SDK, the command line, and the LLM judge end to end.

One small fleet (a tally, two simulated validators, the demo generator) under a two-voter
policy serves the SDK and CLI tests; the LLM judge test runs its own tally and judge against a
local OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from ratifier.core.config import Settings
from ratifier.core.errors import CandidateRejected, TopicsMissing
from ratifier.core.models import (
    Candidate,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    RetryRequest,
    Vote,
)
from ratifier.core.topics import TopicNames
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.io.client import Client, SyncClient
from ratifier.io.testing import read_topics, wait_until, write_policy
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from ratifier.ops.stack import StackStatus
from ratifier.schemas import codec

pytestmark = pytest.mark.integration

DEMO_GENERATOR = "ratifier.app.demo.generator:improve"
LLM_JUDGE = "ratifier.validators.builtin.llm_judge:LLMJudge"
GOOD = {"truth": "accept"}
DOOMED = {"truth": "reject", "next_truth": "reject"}  # the demo generator keeps it wrong
DECIDE_TIMEOUT_S = 45.0
# A rejected case or a wrong prefix must fail this fast (CLI runs include Python's start-up on a
# busy machine); before, they waited the whole timeout (300 s by default) or forever.
FAIL_FAST_S = 15.0


# --- helpers -------------------------------------------------------------------------------------


async def start_fleet(settings: Settings, *specs: ProcessSpec) -> Fleet:
    """Start ``specs`` and wait until each one's consumer group is stable with all members."""
    fleet = Fleet(Fleet.env_for(settings), settings.state_dir / "it-client" / settings.topic_prefix)
    await fleet.start(*specs)
    try:
        await fleet.wait_ready(settings)
    except BaseException:
        await fleet.stop()
        raise
    return fleet


async def read_decisions(settings: Settings, idle_s: float = 1.5) -> list[bytes]:
    """Every raw record on the decision topics, until nothing new arrives for idle_s."""
    return await read_topics(settings, TopicNames.from_settings(settings).decisions, idle_s)


async def run_cli(settings: Settings, *args: str, timeout_s: float = 60.0) -> tuple[int, str, str]:
    """``ratifier ARGS`` in a subprocess with the settings' environment: (exit code, out, err)."""
    env = {**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ratifier",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"ratifier {' '.join(args)} did not finish in {timeout_s}s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- the shared fleet ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def served(
    stack: StackStatus, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    """A running fleet under policy "default" (2 of 2 simulated voters, 2 attempts).

    Module-scoped so the SDK and CLI tests share one start-up; each test makes its own cases.
    Topics get a prefix of their own and are deleted afterwards, as the ``settings`` fixture does.
    """
    policies = tmp_path_factory.mktemp("client-policies")
    write_policy(
        policies, "default", ["sim-a", "sim-b"], accepts=2, window_seconds=10, max_attempts=2
    )
    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings = base_settings.with_overrides(
        topic_prefix=prefix, policy_dir=policies, tick_interval_s=0.2
    )
    await ensure_topics(settings)
    try:
        fleet = await start_fleet(
            settings,
            ProcessSpec.tally(),
            ProcessSpec.validator("sim-a", SIMULATED, {"error_rate": 0.0, "seed": 1}),
            ProcessSpec.validator("sim-b", SIMULATED, {"error_rate": 0.0, "seed": 2}),
            ProcessSpec.generator(DEMO_GENERATOR),
        )
        try:
            yield settings
        finally:
            await fleet.stop()
    finally:
        async with admin_client(settings) as admin:
            ours = [
                t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))
            ]
        await delete_topics(settings, ours)


def assert_passed_first_time(outcome: object, content: str) -> None:
    assert isinstance(outcome, PassDecision), outcome
    assert outcome.candidate.content == content
    assert outcome.attempt == 1
    assert outcome.outcome is OutcomeClass.CONFIRMED
    assert outcome.accept_share == 1.0
    assert outcome.confidence > 0.9  # the posterior after two accepts (docs/policy.md)
    assert {(v.validator_id, v.vote) for v in outcome.votes} == {
        ("sim-a", Vote.ACCEPT),
        ("sim-b", Vote.ACCEPT),
    }


def assert_escalated_after_two(outcome: object, content: str) -> None:
    assert isinstance(outcome, EscalationPacket), outcome
    # 2 of 2: one rejection decides, so the split is 0-1 or 1-1 depending on arrival order.
    assert outcome.reason in (EscalationReason.REJECTED, EscalationReason.TIE)
    assert outcome.outcome is OutcomeClass.UNRESOLVED
    assert [a.candidate.attempt for a in outcome.attempts] == [1, 2]
    assert outcome.attempts[0].candidate.content == content
    assert all(a.failure is FailureReason.THRESHOLD_UNREACHABLE for a in outcome.attempts)


# --- 4. the client SDK ---------------------------------------------------------------------------


async def test_decide_returns_a_pass_or_an_escalation(served: Settings) -> None:
    async with Client(served, producer="it-decide") as client:
        # Concurrently: one watcher serves several waiters, each gets its own case's outcome.
        good, doomed = await asyncio.gather(
            client.decide("a good answer", metadata=GOOD, timeout_s=DECIDE_TIMEOUT_S),
            client.decide("a doomed answer", metadata=DOOMED, timeout_s=DECIDE_TIMEOUT_S),
        )
    assert_passed_first_time(good, "a good answer")
    assert_escalated_after_two(doomed, "a doomed answer")
    assert good.case_id != doomed.case_id


async def test_sync_client_works_from_a_thread(served: Settings) -> None:
    def blocking() -> tuple[Candidate, object]:
        # No event loop in this thread: SyncClient runs its own.
        with SyncClient(served, producer="it-sync") as client:
            submitted = client.submit("fire and forget", metadata=GOOD)
            return submitted, client.decide(
                "a synchronous answer", metadata=GOOD, timeout_s=DECIDE_TIMEOUT_S
            )

    submitted, outcome = await asyncio.to_thread(blocking)
    assert submitted.attempt == 1
    assert submitted.metadata == GOOD
    assert_passed_first_time(outcome, "a synchronous answer")


async def test_decisions_yields_each_decision_id_once(served: Settings) -> None:
    seen: list[Decision] = []
    async with Client(served, producer="it-watch") as client:

        async def collect() -> None:
            async for decision in client.decisions(from_beginning=True):
                seen.append(decision)

        watcher = asyncio.create_task(collect())
        try:
            good = await client.submit("watched good answer", metadata=GOOD)
            doomed = await client.submit("watched doomed answer", metadata=DOOMED)
            mine = {good.case_id, doomed.case_id}

            async def both_final() -> bool:
                finals = {d.case_id for d in seen if isinstance(d, PassDecision | EscalationPacket)}
                return mine <= finals

            await wait_until(both_final, DECIDE_TIMEOUT_S, "both watched cases' final outcomes")
            # A tally that crashes after publishing re-publishes the same decision (same id).
            # Do that by hand with every decision on the topics: none may be yielded again.
            raw = await read_decisions(served)
            for value in raw:
                record = codec.decode(value)
                assert isinstance(record, PassDecision | RetryRequest | EscalationPacket)
                topic = {
                    PassDecision: client.topics.passed,
                    RetryRequest: client.topics.retry,
                    EscalationPacket: client.topics.escalate,
                }[type(record)]
                await client._producer.send_and_wait(topic, value, key=record.case_id.encode())
            count_before = len(seen)
            # A fresh case after the repeats: once its pass is yielded, the repeats (published
            # before it on every partition they share) have been read and skipped.
            marker = await client.submit("marker answer", metadata=GOOD)

            async def marker_seen() -> bool:
                return any(d.case_id == marker.case_id for d in seen)

            await wait_until(marker_seen, DECIDE_TIMEOUT_S, "the marker case's pass")
            await asyncio.sleep(1.0)  # and let any repeat still in flight arrive
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    ids = Counter(d.decision_id for d in seen)
    assert max(ids.values()) == 1, ids.most_common(3)
    assert len(seen) == count_before + 1, seen[count_before:]
    on_topic = {codec.decode(v).decision_id for v in await read_decisions(served)}  # type: ignore[union-attr]
    assert set(ids) == on_topic
    kinds = sorted(type(d).__name__ for d in seen if d.case_id == doomed.case_id)
    assert kinds == ["EscalationPacket", "RetryRequest"]


async def test_decide_fails_fast_when_the_policy_is_unknown(served: Settings) -> None:
    started = time.monotonic()
    async with Client(served, producer="it-rejected") as client:
        with pytest.raises(CandidateRejected) as info:
            await client.decide("an answer", policy="nope", metadata=GOOD, timeout_s=300)
    assert time.monotonic() - started < FAIL_FAST_S
    assert info.value.reason == "UNKNOWN_POLICY"
    assert "'nope'" in info.value.detail
    assert info.value.source[0] == TopicNames.from_settings(served).candidates
    assert "UNKNOWN_POLICY" in str(info.value)


async def test_decide_fails_fast_when_the_candidate_is_too_large(served: Settings) -> None:
    # Its dead letter keeps only an excerpt, which does not decode: matched by its source.
    content = "x" * (served.max_candidate_bytes + 1000)
    started = time.monotonic()
    async with Client(served, producer="it-too-large") as client:
        with pytest.raises(CandidateRejected) as info:
            await client.decide(content, metadata=GOOD, timeout_s=300)
    assert time.monotonic() - started < FAIL_FAST_S
    assert info.value.reason == "TOO_LARGE"
    assert "sha256" in info.value.detail


async def test_client_consumers_fail_fast_on_a_wrong_prefix(served: Settings) -> None:
    wrong = served.with_overrides(topic_prefix=f"missing{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    async with Client(wrong, producer="it-wrong-prefix") as client:
        with pytest.raises(TopicsMissing) as watching:
            async for _ in client.decisions():
                pass
        with pytest.raises(TopicsMissing) as deciding:
            await client.decide("an answer", timeout_s=300)
    assert time.monotonic() - started < 2 * FAIL_FAST_S
    assert set(watching.value.topics) == set(TopicNames.from_settings(wrong).decisions)
    assert f"{wrong.topic_prefix}.deadletter" in deciding.value.topics
    assert wrong.bootstrap_servers in str(deciding.value)


# --- 5. the command line -------------------------------------------------------------------------


async def test_cli_submit_wait_prints_the_final_outcome(served: Settings) -> None:
    code, out, err = await run_cli(
        served,
        "submit",
        "a good answer from the command line",
        "--query",
        "is it good?",
        "--meta",
        "truth=accept",
        "--wait",
        "--timeout",
        str(DECIDE_TIMEOUT_S),
    )
    assert code == 0, err
    (line,) = out.splitlines()
    outcome = json.loads(line)
    assert outcome["type"] == "PassDecision"
    assert outcome["attempt"] == 1
    assert outcome["candidate"]["content"] == "a good answer from the command line"
    assert outcome["candidate"]["query"] == "is it good?"
    assert outcome["candidate"]["metadata"] == {"truth": "accept"}
    assert outcome["candidate"]["producer"] == "cli"


async def test_cli_submit_wait_fails_fast_when_the_policy_is_unknown(served: Settings) -> None:
    started = time.monotonic()
    code, out, err = await run_cli(served, "submit", "an answer", "--policy", "nope", "--wait")
    assert time.monotonic() - started < FAIL_FAST_S
    assert code == 2, (out, err)
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("ratifier: error: the tally rejected the candidate for case ")
    assert "(UNKNOWN_POLICY): policy 'nope' is not loaded" in line


async def test_cli_watch_fails_fast_on_a_wrong_prefix(served: Settings) -> None:
    wrong = served.with_overrides(topic_prefix=f"missing{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    code, out, err = await run_cli(wrong, "watch")
    assert time.monotonic() - started < FAIL_FAST_S
    assert code == 2, (out, err)
    (line,) = err.splitlines()
    assert line == (
        f"ratifier: error: topics {', '.join(TopicNames.from_settings(wrong).decisions)} "
        f"do not exist at {wrong.bootstrap_servers}: is RATIFIER_TOPIC_PREFIX right? "
        "(`ratifier stack up` creates them)"
    )


async def test_cli_watch_prints_one_json_line_per_decision(served: Settings) -> None:
    async with Client(served, producer="it-cli-watch") as client:
        for i in range(2):  # at least two decisions exist, whichever tests ran before
            await client.decide(f"watch me {i}", metadata=GOOD, timeout_s=DECIDE_TIMEOUT_S)
    limit = 2
    code, out, err = await run_cli(served, "watch", "--from-beginning", "--limit", str(limit))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == limit, out
    records = [json.loads(line) for line in lines]
    assert all(r["type"] in {"PassDecision", "RetryRequest", "EscalationPacket"} for r in records)
    assert len({r["decision_id"] for r in records}) == limit


async def test_cli_stack_status_exits_zero(served: Settings) -> None:
    code, out, err = await run_cli(served, "stack", "status", timeout_s=30)
    assert code == 0, (out, err)
    assert "kafka" in out
    assert "redis" in out


# --- 6. the LLM judge end to end -----------------------------------------------------------------


class JudgeServer:
    """An OpenAI-compatible chat-completions endpoint that judges capitals of France."""

    def __init__(self) -> None:
        self.models: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.models.append(body.get("model", ""))
        prompt = body["messages"][-1]["content"]
        answer = prompt.split("<answer>", 1)[1].split("</answer>", 1)[0]
        if "Paris" in answer:
            verdict: dict[str, Any] = {
                "vote": "ACCEPT",
                "confidence": 0.95,
                "severity": None,
                "reasons": [{"code": "capital_ok", "message": "Paris is right.", "quote": ""}],
            }
        else:
            verdict = {
                "vote": "REJECT",
                "confidence": 0.9,
                "severity": "MAJOR",
                "reasons": [
                    {
                        "code": "wrong_capital",
                        "message": "Lyon is not the capital of France.",
                        "quote": "Lyon",
                    }
                ],
            }
        completion = {
            "id": f"chatcmpl-{len(self.models)}",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": orjson.dumps(verdict).decode()},
                    "finish_reason": "stop",
                }
            ],
        }
        return web.json_response(completion)


@pytest.fixture
async def judge_server() -> AsyncIterator[JudgeServer]:
    server = JudgeServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}/v1"
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_llm_judge_decides_through_the_pipeline(
    settings: Settings, judge_server: JudgeServer, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    write_policy(policies, "llm-only", ["llm"], accepts=1, window_seconds=15, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=policies, tick_interval_s=0.2)
    params = {"base_url": judge_server.url, "model": "test", "api_key_env": "RATIFIER_IT_NO_KEY"}
    fleet = await start_fleet(
        tuned, ProcessSpec.tally(), ProcessSpec.validator("llm", LLM_JUDGE, params)
    )
    try:
        async with Client(tuned, producer="it-llm") as client:
            right, wrong = await asyncio.gather(
                client.decide(
                    "The capital of France is Paris.",
                    query="What is the capital of France?",
                    policy="llm-only",
                    timeout_s=DECIDE_TIMEOUT_S,
                ),
                client.decide(
                    "The capital of France is Lyon.",
                    query="What is the capital of France?",
                    policy="llm-only",
                    timeout_s=DECIDE_TIMEOUT_S,
                ),
            )
    finally:
        await fleet.stop()

    assert isinstance(right, PassDecision), right
    (vote,) = right.votes
    assert (vote.validator_id, vote.vote, vote.confidence) == ("llm", Vote.ACCEPT, 0.95)
    assert [(r.code, r.message) for r in vote.reasons] == [("llm.capital_ok", "Paris is right.")]

    assert isinstance(wrong, EscalationPacket), wrong
    (attempt,) = wrong.attempts
    assert attempt.failure is FailureReason.THRESHOLD_UNREACHABLE
    (rejection,) = attempt.verdicts
    assert (rejection.validator_id, rejection.vote) == ("llm", Vote.REJECT)
    (reason,) = rejection.reasons
    assert (reason.code, reason.message) == (
        "llm.wrong_capital",
        "Lyon is not the capital of France.",
    )
    content = attempt.candidate.content
    assert reason.span is not None
    assert content[reason.span.start : reason.span.end] == "Lyon"
    # One request per candidate, each naming the configured model.
    assert judge_server.models == ["test", "test"]
