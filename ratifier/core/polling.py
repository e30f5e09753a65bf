"""The one poller: wait for a condition with a deadline (blocking or async), and run a watcher
beside a block of work.

Both flavours share :class:`Deadline` and the same contract: ``failed`` may name a reason to give
up at once (the process died), so a crash is reported now instead of after the whole timeout; on
timeout ``error`` (default :class:`WaitTimeout`) is raised naming ``what``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from ratifier.core.errors import WaitTimeout


def _never_failed() -> str | None:
    return None


class Deadline:
    """A monotonic deadline ``timeout_s`` from now."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.start = time.monotonic()
        self.end = self.start + timeout_s

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def check(self, what: str, failed: Callable[[], str | None], error: type[Exception]) -> None:
        """Raise ``error`` if ``failed`` names a reason or the deadline has passed."""
        reason = failed()
        if reason is not None:
            raise error(f"gave up waiting for {what}: {reason}")
        if self.expired():
            raise error(f"timed out after {self.timeout_s:g} s waiting for {what}")


def wait_until_sync(
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    failed: Callable[[], str | None] = _never_failed,
    interval_s: float = 0.1,
    error: type[Exception] = WaitTimeout,
) -> float:
    """Poll ``ready`` until true, blocking; returns the seconds it took."""
    deadline = Deadline(timeout_s)
    while not ready():
        deadline.check(what, failed, error)
        time.sleep(interval_s)
    return deadline.elapsed()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    timeout_s: float,
    what: str,
    poll_s: float = 0.25,
    *,
    failed: Callable[[], str | None] = _never_failed,
    error: type[Exception] = WaitTimeout,
) -> float:
    """Await ``predicate`` until it holds; returns the seconds it took."""
    deadline = Deadline(timeout_s)
    while not await predicate():
        deadline.check(what, failed, error)
        await asyncio.sleep(poll_s)
    return deadline.elapsed()


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``work`` as a task for the duration of the block; cancelled when the block ends."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
