"""The local stack: a single-node KRaft Kafka broker built from Maven Central jars, and a
redis-server, both on 127.0.0.1, with their data and logs under ``settings.state_dir``.

    status = up(settings)     # idempotent; resolves jars on first use, waits until both answer
    print(status(settings))   # StackStatus: one line per service
    down(settings)            # SIGTERM, then SIGKILL after a timeout

See docs/local-stack.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ratifier.config import Settings
from ratifier.stack import kafka, redis
from ratifier.stack.process import ServiceStatus, file_lock

__all__ = ["ServiceStatus", "StackStatus", "down", "status", "up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StackStatus:
    kafka: ServiceStatus
    redis: ServiceStatus

    @property
    def running(self) -> bool:
        return self.kafka.running and self.redis.running

    def __str__(self) -> str:
        return f"{self.kafka}\n{self.redis}"


def up(settings: Settings) -> StackStatus:
    """Start whatever is not running and wait until both services answer."""
    started = time.monotonic()
    # One starter at a time: concurrent `stack up` runs would race for the ports and pid files.
    with file_lock(settings.state_dir / "stack.lock"):
        # Everything that can be checked is checked first, so a missing tool or a taken port
        # does not leave a half-started stack behind.
        redis.preflight(settings)
        kafka.preflight(settings)
        redis_status = redis.start(settings)
        kafka_status = kafka.start(settings)
    log.info("stack up in %.1f s", time.monotonic() - started)
    return StackStatus(kafka=kafka_status, redis=redis_status)


def down(settings: Settings) -> None:
    """Stop both services; stopping what is not running is not an error."""
    with file_lock(settings.state_dir / "stack.lock"):
        kafka.stop(settings)
        redis.stop(settings)


def status(settings: Settings) -> StackStatus:
    return StackStatus(kafka=kafka.status(settings), redis=redis.status(settings))
