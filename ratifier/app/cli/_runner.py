"""Run a long-lived async worker until SIGINT or SIGTERM, then stop it cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any, Protocol

from ratifier.core.config import Settings
from ratifier.io.metrics import serve_metrics

logger = logging.getLogger(__name__)


class Worker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self, stop: asyncio.Event | None = None) -> None: ...


async def serve(make_worker: Callable[[], Worker], settings: Settings | None = None) -> None:
    # aiokafka clients must be created inside the running event loop.
    worker = make_worker()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # `kill -USR1 <pid>` logs where every task is waiting: for a worker that seems stuck.
    loop.add_signal_handler(signal.SIGUSR1, log_task_stacks)
    # /metrics, /healthz, /readyz on RATIFIER_METRICS_PORT, for workers that show metrics.
    observe = getattr(worker, "observability", None)
    async with serve_metrics(settings or Settings(), observe() if observe else None):
        await worker.start()
        try:
            await worker.run(stop)
        finally:
            await worker.stop()


def log_task_stacks() -> None:
    """Log each task's chain of awaits, innermost last (``Task.print_stack`` shows only one)."""
    for task in asyncio.all_tasks():
        lines = []
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        logger.warning("task %s awaits:\n%s", task.get_name(), "\n".join(lines))


def run_worker(make_worker: Callable[[], Worker], settings: Settings | None = None) -> int:
    asyncio.run(serve(make_worker, settings))
    return 0
