"""Run a long-lived async worker until SIGINT or SIGTERM, then stop it cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol


class Worker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self, stop: asyncio.Event | None = None) -> None: ...


async def serve(make_worker: Callable[[], Worker]) -> None:
    # aiokafka clients must be created inside the running event loop.
    worker = make_worker()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    try:
        await worker.run(stop)
    finally:
        await worker.stop()


def run_worker(make_worker: Callable[[], Worker]) -> int:
    asyncio.run(serve(make_worker))
    return 0
