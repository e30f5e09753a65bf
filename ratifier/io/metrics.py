"""The HTTP endpoint every long-running process serves: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is the Prometheus text format of the process's own registry (each process builds
one, so several workers in one test process do not collide). ``/healthz`` answers 200 while the
event loop runs; ``/readyz`` answers 200 once the process says it is ready (partitions assigned,
state restored) and 503 with the reason otherwise, for compose healthchecks and orchestrators.

Series that change on every record are read at scrape time wherever the process already keeps
a counter (:class:`ReadAtScrape`), so serving metrics adds no work to a hot path. The port comes
from ``RATIFIER_METRICS_PORT`` (0: no endpoint); see docs/monitoring.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ratifier.core.config import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "CALL_LATENCY_BUCKETS",
    "LATENCY_BUCKETS",
    "ConsumerLag",
    "MetricsEndpoint",
    "Observability",
    "ReadAtScrape",
    "Readiness",
    "serve_metrics",
]

# Validator latencies run from a rule check (< 1 ms) to an LLM judge (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A validator call: rule checkers answer in microseconds, LLM judges in seconds.
CALL_LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS)
# How long a scrape waits for a consumer's position (a partition being reset has none yet).
_POSITION_WAIT_S = 0.5


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    detail: str


ReadyCheck = Callable[[], Readiness]
BeforeScrape = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Observability:
    """What a worker shows on its endpoint: its registry, its readiness, refreshes per scrape."""

    registry: CollectorRegistry
    ready: ReadyCheck
    before_scrape: tuple[BeforeScrape, ...] = ()


class ReadAtScrape(Collector):
    """A collector that builds its metric families when scraped, from the process's counters."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class ConsumerLag:
    """``ratifier_consumer_lag{topic,partition}``: records on the partition not yet consumed.

    Measured before each scrape from the consumer's last stable offset (``read_committed``) and
    its position, so the worker's loop does nothing for it.
    """

    def __init__(self, registry: CollectorRegistry, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._gauge = Gauge(
            "ratifier_consumer_lag",
            "Records on an assigned input partition not yet consumed by this process",
            ["topic", "partition"],
            registry=registry,
        )
        self._shown: set[TopicPartition] = set()

    async def refresh(self) -> None:
        consumer = self._consumer
        assigned = set(consumer.assignment())
        for tp in self._shown - assigned:  # revoked: no longer this process's lag
            with contextlib.suppress(KeyError):
                self._gauge.remove(tp.topic, str(tp.partition))
        self._shown = set()
        for tp in assigned:
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), _POSITION_WAIT_S)
            except Exception:  # no position yet (being reset, revoked meanwhile): not shown
                continue
            self._gauge.labels(tp.topic, str(tp.partition)).set(max(0, end - position))
            self._shown.add(tp)


class MetricsEndpoint:
    """An aiohttp server for one registry. ``async with`` it, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        port: int,
        host: str = "127.0.0.1",
        ready: ReadyCheck,
        before_scrape: Iterable[BeforeScrape] = (),
    ) -> None:
        self.registry = registry
        self.port = port
        self.host = host
        self._ready = ready
        self._before_scrape = tuple(before_scrape)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()  # a start that fails (port taken) leaves nothing set up
            raise
        logger.info("metrics on http://%s:%d/metrics (and /healthz, /readyz)", self.host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> MetricsEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        for refresh in self._before_scrape:
            try:
                await refresh()
            except Exception:  # a failed refresh must not cost the other series
                logger.exception("metrics refresh failed")
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        state = self._ready()
        status = 200 if state.ready else 503
        word = "ready" if state.ready else "not ready"
        return web.Response(status=status, text=f"{word}: {state.detail}\n")


@contextlib.asynccontextmanager
async def serve_metrics(
    settings: Settings, observability: Observability | None
) -> AsyncIterator[MetricsEndpoint | None]:
    """The endpoint on ``settings.metrics_port`` for the block; nothing when the port is 0 or
    cannot be listened on (logged)."""
    if not settings.metrics_port or observability is None:
        yield None
        return
    endpoint = MetricsEndpoint(
        observability.registry,
        port=settings.metrics_port,
        host=settings.metrics_host,
        ready=observability.ready,
        before_scrape=observability.before_scrape,
    )
    try:
        await endpoint.start()
    except OSError as exc:
        # The worker's job matters more than its metrics: it runs on, and says why it has none.
        logger.error(
            "no /metrics, /healthz, /readyz: cannot listen on %s:%d (%s); "
            "choose another RATIFIER_METRICS_PORT",
            settings.metrics_host,
            settings.metrics_port,
            exc,
        )
        yield None
        return
    try:
        yield endpoint
    finally:
        await endpoint.stop()


def assigned_readiness(consumer: AIOKafkaConsumer, what: str) -> Readiness:
    """Ready once the group gave this consumer partitions (validators, generator)."""
    assigned = consumer.assignment()
    if assigned:
        partitions = sorted({tp.partition for tp in assigned})
        return Readiness(True, f"{what}: partitions {partitions} assigned")
    return Readiness(False, f"{what}: no partitions assigned yet")
