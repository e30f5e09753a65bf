"""``ratifier gateway serve``: the HTTP API, its case index and the Client behind them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from ratifier.core.config import Settings
from ratifier.core.models import Decision
from ratifier.core.tokens import load_tokens
from ratifier.io.client import Client
from ratifier.io.metrics import Observability, Readiness
from ratifier.io.outcomes_log import committed_outcomes
from ratifier.runtimes.gateway.api import GatewayApi, GatewayLimits
from ratifier.runtimes.gateway.index import CaseIndex

__all__ = ["GatewayLimits", "GatewayService"]

logger = logging.getLogger(__name__)


class GatewayService:
    def __init__(
        self,
        settings: Settings,
        *,
        host: str,
        port: int,
        limits: GatewayLimits | None = None,
        version: str = "0",
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        tokens = load_tokens(
            settings.gateway_tokens_file, variable="RATIFIER_GATEWAY_TOKENS_FILE", holder="client"
        )
        self.client = Client(settings, producer="gateway")
        self.index = CaseIndex()
        self.registry = CollectorRegistry()
        self.api = GatewayApi(
            submit=self.client.submit,
            decide=self.client.decide_case,
            decisions=self._decisions,
            index=self.index,
            tokens=tokens,
            limits=limits or GatewayLimits(),
            registry=self.registry,
            version=version,
            ready=lambda: self.ready,
        )
        Gauge(
            "ratifier_gateway_cases_known", "Cases in the gateway's index", registry=self.registry
        ).set_function(lambda: len(self.index))
        self._runner = web.AppRunner(self.api.app, access_log=None)  # tokens stay out of logs
        self._followers: list[asyncio.Task[None]] = []
        self.ready = False

    def _decisions(self, from_beginning: bool) -> AsyncIterator[Decision]:
        return self.client.decisions(from_beginning=from_beginning)

    def observability(self) -> Observability:
        """/metrics, /healthz, /readyz on RATIFIER_METRICS_PORT: requests, submissions, streams."""

        def ready() -> Readiness:
            if self.ready:
                return Readiness(True, f"serving on {self.host}:{self.port}")
            return Readiness(False, "connecting to Kafka, reading the decisions")

        return Observability(self.registry, ready)

    async def start(self) -> None:
        await self.client.start()
        self._followers = [
            asyncio.create_task(self._follow_decisions(), name="gateway-decisions"),
            asyncio.create_task(self._follow_outcomes(), name="gateway-outcomes"),
        ]
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        self.port = self._bound_port()
        self.ready = True
        logger.info("gateway on http://%s:%d/ (OpenAPI at /openapi.json)", self.host, self.port)

    def _bound_port(self) -> int:
        """The port listened on: the one asked for, or the one the system chose for 0."""
        addresses = self._runner.addresses
        return int(addresses[0][1]) if addresses else self.port

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                [stopping, *self._followers], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopping:
                    task.result()  # a follower failed: the gateway fails with it
        finally:
            stopping.cancel()

    async def stop(self) -> None:
        self.ready = False
        await self.api.close_streams()
        await self._runner.cleanup()
        for task in self._followers:
            task.cancel()
        for task in self._followers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.stop()

    async def _follow_decisions(self) -> None:
        async for decision in self.client.decisions(from_beginning=True):
            self.index.on_decision(decision)

    async def _follow_outcomes(self) -> None:
        outcomes = committed_outcomes(self.settings, idle_s=None, client_id="ratifier-gateway")
        async for outcome in outcomes:
            self.index.on_outcome(outcome)
