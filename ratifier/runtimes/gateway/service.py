"""``ratifier gateway serve``: the HTTP API, its case index and the Client behind them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.models import Decision
from ratifier.core.review import Reviewers
from ratifier.io.client import Client
from ratifier.io.metrics import Observability, Readiness
from ratifier.io.outcomes_log import committed_outcomes
from ratifier.runtimes.gateway.api import GatewayApi, GatewayLimits
from ratifier.runtimes.gateway.index import CaseIndex

__all__ = ["GatewayLimits", "GatewayService", "load_tokens"]

logger = logging.getLogger(__name__)


def load_tokens(path: Path | None) -> Reviewers:
    """The gateway's clients: ``name token`` a line, the reviewer tokens file's format."""
    if path is None:
        raise ConfigError(
            "the gateway needs its clients' tokens: set RATIFIER_GATEWAY_TOKENS_FILE (or "
            "--tokens-file) to a file of 'name token' lines (tokens of 16+ characters)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the gateway tokens file {path}: {exc.strerror}") from None
    tokens = Reviewers.parse(text, source=str(path))
    if not tokens.ids:
        raise ConfigError(f"the gateway tokens file {path} lists no client")
    return tokens


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
        tokens = load_tokens(settings.gateway_tokens_file)
        self.client = Client(settings, producer="gateway")
        self.index = CaseIndex()
        self.registry = CollectorRegistry()
        self.api = GatewayApi(
            submit=self.client.submit,
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
        self.port = self._bound_port(site)
        self.ready = True
        logger.info("gateway on http://%s:%d/ (OpenAPI at /openapi.json)", self.host, self.port)

    def _bound_port(self, site: web.TCPSite) -> int:
        server = site._server  # the listening socket: its port when 0 was asked for
        sockets = getattr(server, "sockets", None) or ()
        return int(sockets[0].getsockname()[1]) if sockets else self.port

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
