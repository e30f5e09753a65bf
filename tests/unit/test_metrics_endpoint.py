"""The metrics endpoint every long-running process serves: /metrics, /healthz, /readyz."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily

from ratifier.core.config import Settings
from ratifier.io.metrics import (
    MetricsEndpoint,
    Observability,
    ReadAtScrape,
    Readiness,
    serve_metrics,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(port: int, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def test_metrics_health_and_readiness() -> None:
    registry = CollectorRegistry()
    Counter("ratifier_things_total", "things", registry=registry).inc(3)
    seen = {"count": 0}
    registry.register(
        ReadAtScrape(lambda: [CounterMetricFamily("ratifier_seen", "seen", value=seen["count"])])
    )
    state = {"ready": False}
    refreshed: list[int] = []

    async def refresh() -> None:
        refreshed.append(1)
        seen["count"] += 1

    observability = Observability(
        registry, lambda: Readiness(state["ready"], "partitions [0, 1]"), (refresh,)
    )
    settings = Settings(metrics_port=_free_port())
    async with serve_metrics(settings, observability) as endpoint:
        assert endpoint is not None
        port = settings.metrics_port
        status, kind, text = await _get(port, "/metrics")
        assert status == 200
        assert kind.startswith("text/plain")
        assert "ratifier_things_total 3.0" in text
        assert "ratifier_seen_total 1.0" in text  # read at scrape time, after the refresh
        assert (await _get(port, "/healthz"))[0] == 200
        status, _, text = await _get(port, "/readyz")
        assert (status, text) == (503, "not ready: partitions [0, 1]\n")
        state["ready"] = True
        status, _, text = await _get(port, "/readyz")
        assert (status, text) == (200, "ready: partitions [0, 1]\n")
        assert len(refreshed) == 1


async def test_a_port_in_use_is_logged_and_the_worker_runs_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observability = Observability(CollectorRegistry(), lambda: Readiness(True, ""))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(metrics_port=taken.getsockname()[1])
        async with serve_metrics(settings, observability) as endpoint:
            assert endpoint is None
    assert f"cannot listen on 127.0.0.1:{settings.metrics_port}" in caplog.text


async def test_a_failed_start_leaves_nothing_set_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = MetricsEndpoint(
            CollectorRegistry(), port=port, ready=lambda: Readiness(True, "")
        )
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await endpoint.start()
    assert endpoint._runner.server is None  # its server shut down, not left to the collector


async def test_port_zero_serves_nothing() -> None:
    observability = Observability(CollectorRegistry(), lambda: Readiness(True, ""))
    async with serve_metrics(Settings(), observability) as endpoint:
        assert endpoint is None


def test_the_grafana_dashboard_queries_series_that_exist() -> None:
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "docs" / "grafana" / "ratifier.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bratifier_[a-z_]+", target["expr"])
    }
    sources = "".join(
        path.read_text()
        for folder in ("ratifier", "streams", "validators")
        for path in (root / folder).rglob("*.py")
    )
    # A counter may be declared without _total; a histogram is declared without _bucket.
    for name in queried:
        declared = re.sub(r"_(total|bucket)$", "", name)
        assert f'"{name}"' in sources or f'"{declared}"' in sources, name
    assert len(queried) >= 15
