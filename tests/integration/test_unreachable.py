"""Every command that needs Kafka or Redis, pointed at one that does not answer: one line naming
the address, its setting and what to check, exit code 2, no traceback, within the connect
timeout (plus the interpreter's start-up).

"Does not answer" is a listening socket that never replies (a firewall dropping packets, a
wrong host): the case that hangs for minutes without a bound, unlike a refused connection."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratifier.app.cli.reach import NEEDS
from ratifier.core.config import Settings
from ratifier.ops.fleet import SIMULATED

pytestmark = pytest.mark.integration

TIMEOUT_S = 2.0
STARTUP_S = 8.0  # python and the CLI's imports on a busy 2-core machine
PARALLEL = 3


def sample_args(tmp_path: Path) -> dict[str, list[str]]:
    """Arguments that pass each command's own parsing."""
    history = tmp_path / "history.tsv"
    history.write_text("!amt_annotation_ids\t!amt_worker_ids\torig_id\tresponse\tgold\n")
    token = tmp_path / "token"
    token.write_text("t\n")
    return {
        "tally run": [],
        "tally status": [],
        "validator run": [SIMULATED, "--id", "v"],
        "generator run": ["ratifier.app.demo.generator:improve"],
        "submit": ["an answer"],
        "watch": [],
        "deadletters tail": [],
        "deadletters replay": ["--reason", "MALFORMED", "--dry-run"],
        "outcomes run": [],
        "outcomes tail": [],
        "outcomes show": ["case-1"],
        "replay": [str(history)],
        "review serve": ["--port", "0"],
        "review list": [],
        "review show": ["case-1"],
        "review resolve": ["case-1", "--token-file", str(token), "--confirm", "c"],
        "answer": ["case-1"],
        "monitor run": [],
        "case": ["case-1"],
        "scoreboard": [],
        "demo": ["--cases", "1", "--metrics-port", "0", "--review-port", "0"],
        "gateway serve": ["--port", "0"],
        "acl apply": [],
    }


@pytest.fixture
def silent_address() -> Iterator[str]:
    """host:port of a socket that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"127.0.0.1:{server.getsockname()[1]}"


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ratifier", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    return process.returncode or 0, (out + err).decode(), time.monotonic() - started


async def _walk(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, tuple]:
    gate = asyncio.Semaphore(PARALLEL)

    async def one(path: str, args: list[str]) -> tuple[int, str, float]:
        async with gate:
            return await _run([*path.split(), *args], env)

    results = await asyncio.gather(*(one(p, a) for p, a in commands.items()))
    return dict(zip(commands, results, strict=True))


def _check(results: dict[str, tuple], needle: str) -> None:
    for path, (code, output, elapsed) in results.items():
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2, f"{path}: exit {code}\n{output}"
        assert "Traceback" not in output, f"{path}:\n{output}"
        assert len(lines) == 1, f"{path}: {len(lines)} lines\n{output}"
        assert lines[0].startswith(f"ratifier: error: cannot reach {needle}"), f"{path}: {output}"
        assert elapsed < TIMEOUT_S + STARTUP_S, f"{path} took {elapsed:.1f} s"


def _env(settings: Settings, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATIFIER_")}
    env.update(
        PYTHONSAFEPATH="1",
        RATIFIER_CONNECT_TIMEOUT_S=str(TIMEOUT_S),
        RATIFIER_STATE_DIR=str(settings.state_dir),
        RATIFIER_TOPIC_PREFIX=settings.topic_prefix,
        RATIFIER_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        RATIFIER_REDIS_URL=settings.redis_url,
    )
    env.update(variables)
    return env


async def test_every_kafka_command_fails_in_one_line_when_kafka_does_not_answer(
    settings: Settings, tmp_path: Path, silent_address: str
) -> None:
    samples = sample_args(tmp_path)
    assert set(samples) == set(NEEDS)
    commands = {path: samples[path] for path, needs in NEEDS.items() if needs.kafka}
    env = _env(settings, RATIFIER_BOOTSTRAP_SERVERS=silent_address)
    results = await _walk(commands, env)
    _check(results, f"Kafka at {silent_address} (RATIFIER_BOOTSTRAP_SERVERS)")


async def test_every_redis_command_fails_in_one_line_when_redis_does_not_answer(
    settings: Settings, tmp_path: Path, silent_address: str
) -> None:
    samples = sample_args(tmp_path)
    commands = {path: samples[path] for path, needs in NEEDS.items() if needs.redis}
    env = _env(settings, RATIFIER_REDIS_URL=f"redis://{silent_address}/0")
    results = await _walk(commands, env)
    _check(results, f"Redis at redis://{silent_address}/0 (RATIFIER_REDIS_URL)")


async def test_submit_to_a_prefix_without_topics_fails_at_once(settings: Settings) -> None:
    env = _env(settings, RATIFIER_TOPIC_PREFIX=f"{settings.topic_prefix}-none")
    code, output, elapsed = await _run(["submit", "an answer"], env)
    assert code == 2
    assert output.strip().splitlines() == [
        f"ratifier: error: topics {settings.topic_prefix}-none.candidates do not exist at "
        f"{settings.bootstrap_servers}: is RATIFIER_TOPIC_PREFIX right? "
        "(`ratifier stack up` creates them)"
    ]
    assert elapsed < TIMEOUT_S + STARTUP_S


async def test_every_command_without_its_topics_fails_in_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    """A wrong prefix, or validators started before the tally of a release that adds a topic
    (`<prefix>.rounds`): the worker names the topics at once instead of a traceback after the
    consumer's metadata wait. Each command is refused for the topic its needs name first."""
    prefix = f"{settings.topic_prefix}-none"
    samples = sample_args(tmp_path)
    workers = {path: samples[path] for path, needs in NEEDS.items() if needs.topics}
    assert {"validator run", "generator run", "outcomes run", "monitor run", "review serve"} <= set(
        workers
    )
    results = await _walk(workers, _env(settings, RATIFIER_TOPIC_PREFIX=prefix))
    for path, (code, output, elapsed) in results.items():
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2, f"{path}: exit {code}\n{output}"
        assert "Traceback" not in output, f"{path}:\n{output}"
        assert len(lines) == 1, f"{path}: {len(lines)} lines\n{output}"
        missing = NEEDS[path].topic_names(settings.with_overrides(topic_prefix=prefix))
        assert lines[0].startswith(
            f"ratifier: error: topics {', '.join(missing)} do not exist at "
        ), f"{path}: {output}"
        assert elapsed < TIMEOUT_S + STARTUP_S, f"{path} took {elapsed:.1f} s"
