"""Helpers for testing against a real broker: polling with a deadline, reading topics back.

Used by Ratifier's own integration tests; equally useful for testing your validators and
generators end to end on the local stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from aiokafka import ConsumerRecord

from ratifier.core import models
from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Reason, Severity, Verdict, Vote
from ratifier.core.polling import wait_until
from ratifier.io.client import read_from_beginning
from ratifier.io.consume import RuntimeWorker

__all__ = [
    "read_records",
    "read_topics",
    "running",
    "self_signed_certificate",
    "verdict_on",
    "wait_until",
    "write_policy",
]


@contextlib.asynccontextmanager
async def running(*workers: RuntimeWorker) -> AsyncIterator[None]:
    """The workers (validators, ...) started and running for the block; then stopped as
    SIGTERM stops them."""
    stop = asyncio.Event()
    for worker in workers:
        await worker.start()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for worker in workers:
            await worker.stop()


async def read_topics(
    settings: Settings, topics: Iterable[str], idle_s: float = 2.0
) -> list[bytes]:
    """Every record value on ``topics`` from the beginning, until none arrives for ``idle_s``."""
    return [r.value or b"" for r in await read_records(settings, topics, idle_s)]


async def read_records(
    settings: Settings, topics: Iterable[str], idle_s: float = 2.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record on ``topics`` (headers too), until none arrives for ``idle_s``."""
    reader = read_from_beginning(
        settings, topics, client_id="ratifier-testing-reader", idle_s=idle_s
    )
    return [record async for record in reader]


def write_policy(
    folder: Path,
    name: str,
    voters: Iterable[str],
    *,
    accepts: int,
    window_seconds: float,
    max_attempts: int,
    red_team: Iterable[str] = (),
    complete_packets: bool | None = None,
) -> Path:
    """Write a minimal policy file (the one policy writer of tests and benchmarks): equal-weight
    voters, a count threshold, and red-team validators whose veto retries; returns its path.
    ``complete_packets`` None leaves the policy's default."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f'name = "{name}"',
        'version = "test-1"',
        f"max_attempts = {max_attempts}",
        f"window_seconds = {window_seconds}",
        *(
            []
            if complete_packets is None
            else [f"complete_packets = {str(complete_packets).lower()}"]
        ),
        "[threshold]",
        f"accepts = {accepts}",
    ]
    red = list(red_team)
    if red:
        lines += ["[veto]", 'action = "retry"']
    for voter in voters:
        lines += ["[[validators]]", f'id = "{voter}"']
    for member in red:
        lines += ["[[validators]]", f'id = "{member}"', 'role = "red-team"']
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def verdict_on(
    candidate: Candidate,
    validator_id: str,
    vote: Vote,
    *,
    confidence: float = 0.9,
    version: str = "manual-1",
    severity: Severity | None = None,
    reasons: tuple[Reason, ...] = (),
) -> Verdict:
    """:func:`ratifier.core.models.verdict_on` with a test's defaults (and 1 ms of latency)."""
    return models.verdict_on(
        candidate,
        validator_id,
        vote,
        confidence=confidence,
        version=version,
        severity=severity,
        reasons=reasons,
        latency_ms=1,
    )


def self_signed_certificate(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its unencrypted key, as PEM files
    ``<name>.pem`` and ``<name>.key`` in ``folder`` (made with openssl; for TLS tests)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
