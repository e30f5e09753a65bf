"""``ratifier review list|show|resolve`` and ``ratifier answer`` against the real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ratifier.app.cli import main
from ratifier.app.configs import review_config
from ratifier.core.config import Settings
from ratifier.core.models import Outcome, OutcomeClass
from ratifier.features.outcomes.core import outcome_id_for
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.io.redis_client import connect
from ratifier.io.trusted_store import TrustedStore
from tests.integration.review_support import packet, redis_for, write_reviewers

pytestmark = pytest.mark.integration


@pytest.fixture
def queued(
    stack: object, base_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, Path]]:
    tokens = write_reviewers(tmp_path, "ann")
    (tmp_path / "ann.token").write_text(tokens["ann"] + "\n")
    (tmp_path / "eve.token").write_text("eve-is-not-a-reviewer-0123\n")
    settings = base_settings.with_overrides(
        topic_prefix=f"c{uuid.uuid4().hex[:10]}", review_tokens_file=tmp_path / "reviewers.txt"
    )

    async def enqueue() -> None:
        redis = connect(settings)
        queue = ReviewQueue(redis, review_config(settings), None)
        await queue.ensure_groups()
        await queue.enqueue(packet("case-a"))
        await queue.enqueue(packet("case-b", attempts=3))
        await redis.aclose()

    async def clear() -> None:
        async with redis_for(settings):  # deletes the prefix's keys on leaving
            pass

    asyncio.run(enqueue())
    yield settings, tmp_path
    asyncio.run(clear())


def run(settings: Settings, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--prefix", settings.topic_prefix, *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_list_show_and_resolve(
    queued: tuple[Settings, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, folder = queued
    tokens_file = str(settings.review_tokens_file)
    code, out = run(settings, capsys, "review", "list", "--json")
    assert code == 0
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [x["case_id"] for x in lines] == ["case-a", "case-b"]
    assert [x["attempts"] for x in lines] == [2, 3]
    assert all(x["waiting_s"] >= 5 and x["claimed_by"] is None for x in lines)
    code, out = run(settings, capsys, "review", "list")
    assert code == 0
    assert "waiting: 2" in out

    code, out = run(settings, capsys, "review", "show", "case-b")
    assert code == 0
    shown = orjson.loads(out)
    assert (shown["state"], shown["packet"]["case_id"]) == ("queued", "case-b")
    assert len(shown["packet"]["attempts"]) == 3

    resolve = ("review", "resolve", "--tokens-file", tokens_file)
    good = ("--token-file", str(folder / "ann.token"))
    code, out = run(settings, capsys, *resolve, "case-a", *good, "--correct", "14 days.",
                    "--note", "30 was wrong")  # fmt: skip
    assert code == 0
    assert "case case-a: correct by ann" in out
    code, out = run(settings, capsys, "review", "show", "case-a")
    shown = orjson.loads(out)
    assert (shown["state"], shown["resolved_by"], shown["action"]) == ("resolved", "ann", "correct")
    code, out = run(settings, capsys, "review", "list", "--json")
    assert [orjson.loads(line)["case_id"] for line in out.splitlines()] == ["case-b"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("case-b", "--token-file", "{eve}", "--unresolved", "x"), "no reviewer has that token"),
        (("case-b", "--token-file", "{ann}", "--unresolved", "x", "--confirm", "c"), "exactly one"),
        (("case-b", "--token-file", "{ann}", "--correct", "  ", "--note", "n"), "it is empty"),
        (("case-b", "--token-file", "{ann}", "--confirm", "nope"), "has no candidate 'nope'"),
        (("case-zz", "--token-file", "{ann}", "--unresolved", "x"), "no review item for case"),
        (
            ("case-b", "--token-file", "{missing}", "--unresolved", "x"),
            "cannot read the token file",
        ),
    ],
)
def test_bad_resolutions_exit_2_and_change_nothing(
    queued: tuple[Settings, Path],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    settings, folder = queued
    paths = {"eve": folder / "eve.token", "ann": folder / "ann.token", "missing": folder / "no"}
    filled = [a.format(**paths) for a in args]
    code, out = run(settings, capsys, "review", "resolve", "--tokens-file",
                    str(settings.review_tokens_file), *filled)  # fmt: skip
    assert code == 2, out
    assert message in out
    assert "eve-is-not-a-reviewer" not in out  # a token is never printed
    code, out = run(settings, capsys, "review", "list", "--json")
    assert len(out.splitlines()) == 2  # both still waiting


def test_resolving_needs_the_reviewer_list(
    queued: tuple[Settings, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, folder = queued
    monkeypatch.delenv("RATIFIER_REVIEW_TOKENS_FILE", raising=False)
    code, out = run(settings, capsys, "review", "resolve", "case-a", "--token-file",
                    str(folder / "ann.token"), "--unresolved", "x")  # fmt: skip
    assert code == 2
    assert "set RATIFIER_REVIEW_TOKENS_FILE" in out


def test_answer_prints_trusted_answers_only(
    queued: tuple[Settings, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = queued
    outcome = Outcome(outcome_id_for("case-t"), "case-t", OutcomeClass.CORRECTED, "auto", 5, 2,
                      "c2", "It is 4.", "2+2?", "qa", None, "default", "v7", ("d-1",))  # fmt: skip

    async def store() -> None:
        redis = connect(settings)
        await TrustedStore.from_settings(redis, settings).put(outcome)
        await redis.aclose()

    asyncio.run(store())
    code, out = run(settings, capsys, "answer", "case-t")
    assert code == 0
    shown = orjson.loads(out)
    assert (shown["type"], shown["content"], shown["kind"]) == ("Outcome", "It is 4.", "corrected")
    code, out = run(settings, capsys, "answer", "case-a")  # in review: no trusted answer
    assert code == 1
    assert "case case-a has no trusted answer" in out
