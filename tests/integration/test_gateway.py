"""The HTTP gateway through the real broker, a real tally and validators, and a real HTTP
client (aiohttp's, and curl as docs/gateway.md shows it)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from ratifier.core.config import Settings
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.io.metrics import serve_metrics
from ratifier.io.testing import wait_until, write_policy
from ratifier.ops.fleet import SIMULATED, Fleet, ProcessSpec
from ratifier.ops.stack import StackStatus
from ratifier.runtimes.gateway import GatewayLimits, GatewayService
from ratifier.runtimes.gateway.openapi import CASE_VIEW, ERROR
from tests.integration.monitor_support import free_port, scrape, value

pytestmark = pytest.mark.integration

TOKEN = "gw-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"truth": "accept"}
DOOMED = {"truth": "reject", "next_truth": "reject"}  # the demo generator keeps it wrong
LIMITS = GatewayLimits(max_body_bytes=4096, max_wait_s=45.0, max_streams=2)


class Gateway:
    def __init__(self, service: GatewayService, metrics_port: int) -> None:
        self.service = service
        self.url = f"http://127.0.0.1:{service.port}"
        self.metrics_port = metrics_port


@pytest.fixture(scope="module")
async def gateway(
    stack: StackStatus, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    """Tally, two simulated voters (2 of 2, 2 attempts), the demo generator, and the gateway
    in this process on a port of its own, with its metrics endpoint on another."""
    folder = tmp_path_factory.mktemp("gateway")
    write_policy(
        folder, "default", ["sim-a", "sim-b"], accepts=2, window_seconds=10, max_attempts=2
    )
    (folder / "tokens.txt").write_text(f"svc {TOKEN}\n")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings = base_settings.with_overrides(
        topic_prefix=prefix,
        policy_dir=folder,
        tick_interval_s=0.2,
        gateway_tokens_file=folder / "tokens.txt",
        metrics_port=free_port(),
    )
    await ensure_topics(settings)
    fleet = Fleet(Fleet.env_for(settings), settings.state_dir / "it-gateway" / prefix)
    try:
        await fleet.start(
            ProcessSpec.tally(),
            ProcessSpec.validator("sim-a", SIMULATED, {"error_rate": 0.0, "seed": 1}),
            ProcessSpec.validator("sim-b", SIMULATED, {"error_rate": 0.0, "seed": 2}),
            ProcessSpec.generator("ratifier.app.demo.generator:improve"),
        )
        await fleet.wait_ready(settings)
        service = GatewayService(settings, host="127.0.0.1", port=0, limits=LIMITS)
        await service.start()
        try:
            async with serve_metrics(settings, service.observability()):
                yield Gateway(service, settings.metrics_port)
        finally:
            await service.stop()
    finally:
        await fleet.stop()
        async with admin_client(settings) as admin:
            ours = [
                t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))
            ]
        await delete_topics(settings, ours)


async def call(
    url: str, method: str, path: str, *, headers: dict[str, str] = AUTH, **kwargs: Any
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, headers=headers, **kwargs) as response,
    ):
        return response.status, await response.json(content_type=None), response.headers


def case_view(body: Any) -> dict[str, Any]:
    jsonschema.validate(body, CASE_VIEW)
    assert isinstance(body, dict)
    return body


async def test_submit_and_wait_in_one_request(gateway: Gateway) -> None:
    case_id = f"gw-{uuid.uuid4().hex[:8]}"
    body = {
        "content": "Paris.",
        "query": "Capital of France?",
        "case_id": case_id,
        "metadata": GOOD,
    }
    status, view, headers = await call(gateway.url, "POST", "/v1/cases?wait=40", json=body)
    assert status == 200, view
    view = case_view(view)
    assert (view["case_id"], view["status"], view["final"], view["attempt"]) == (
        case_id, "passed", True, 1
    )  # fmt: skip
    assert view["decision"]["type"] == "PassDecision"
    assert view["decision"]["candidate"]["content"] == "Paris."
    assert headers["Location"] == f"/v1/cases/{case_id}"


async def test_submit_then_long_poll_the_case(gateway: Gateway) -> None:
    status, view, headers = await call(
        gateway.url, "POST", "/v1/cases", json={"content": "Lyon.", "metadata": DOOMED}
    )
    assert status == 202, view
    view = case_view(view)
    assert (view["status"], view["final"], view["decision"]) == ("submitted", False, None)
    status, view, _ = await call(gateway.url, "GET", f"{headers['Location']}?wait=40")
    assert status == 200
    view = case_view(view)
    assert (view["status"], view["final"]) == ("escalated", True)
    assert view["decision"]["type"] == "EscalationPacket"
    assert len(view["decision"]["attempts"]) == 2


async def test_decisions_stream_as_server_sent_events(gateway: Gateway) -> None:
    case_id = f"gw-sse-{uuid.uuid4().hex[:8]}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(gateway.url + "/v1/decisions?from_beginning=true", headers=AUTH) as stream,
    ):
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        status, _, _ = await call(
            gateway.url,
            "POST",
            "/v1/cases",
            json={"content": "x", "case_id": case_id, "metadata": GOOD},
        )
        assert status == 202
        event = await asyncio.wait_for(_event_for(stream, case_id), 40)
    assert event["event"] == "pass"
    data = json.loads(event["data"])
    assert (data["type"], data["case_id"], event["id"]) == (
        "PassDecision",
        case_id,
        data["decision_id"],
    )


async def _event_for(stream: aiohttp.ClientResponse, case_id: str) -> dict[str, str]:
    """The first event about ``case_id``: its field lines parsed (``field: value``)."""
    fields: dict[str, str] = {}
    async for raw in stream.content:
        line = raw.decode().rstrip("\n")
        if line:
            if not line.startswith(":"):
                name, _, text = line.partition(": ")
                fields[name] = text
            continue
        if fields and json.loads(fields["data"])["case_id"] == case_id:
            return fields
        fields = {}
    raise AssertionError("the stream ended")


async def test_bearer_token_required(gateway: Gateway) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token-at-all"}, {"Authorization": TOKEN}):
        status, body, response_headers = await call(
            gateway.url, "GET", "/v1/cases/x", headers=headers
        )
        assert status == 401
        jsonschema.validate(body, ERROR)
        assert response_headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in json.dumps(body)


async def test_bad_requests_are_refused_with_the_reason(gateway: Gateway) -> None:
    too_big = {"content": "x" * LIMITS.max_body_bytes}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"json": too_big}, 413, "Request Entity Too Large"),
        ({"data": b"not json"}, 400, "the body must be a JSON object"),
        ({"json": {"content": "x", "colour": "red"}}, 400, "unknown fields: colour"),
        ({"json": {"content": ""}}, 400, "content must be a non-empty string"),
        ({"json": {"content": "x", "metadata": {"n": 1}}}, 400, "metadata must be an object"),
    ]
    for kwargs, expected, text in cases:
        status, body, _ = await call(gateway.url, "POST", "/v1/cases", **kwargs)
        assert status == expected, (kwargs, body)
        jsonschema.validate(body, ERROR)
        assert text in body["error"]
    status, body, _ = await call(gateway.url, "GET", "/v1/cases/never-submitted")
    assert status == 404
    assert "never-submitted" in body["error"]
    status, body, _ = await call(gateway.url, "GET", "/v1/cases/x?wait=soon")
    assert (status, body["error"]) == (400, "wait must be a number of seconds, got 'soon'")


async def test_openapi_document_and_metrics(gateway: Gateway) -> None:
    status, document, _ = await call(gateway.url, "GET", "/openapi.json", headers={})
    assert status == 200
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/v1/cases", "/v1/cases/{case_id}", "/v1/decisions"}
    assert document["components"]["schemas"]["CaseView"] == json.loads(json.dumps(CASE_VIEW))
    status, text = await scrape(gateway.metrics_port)
    assert status == 200
    assert value(text, "ratifier_gateway_cases_submitted_total") >= 1
    assert value(text, 'ratifier_gateway_requests_total{route="/v1/cases",status="401"}') == 0
    assert (
        value(text, 'ratifier_gateway_requests_total{route="/v1/cases/{case_id}",status="401"}')
        >= 3
    )
    assert (await scrape(gateway.metrics_port, "/readyz"))[0] == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_the_curl_example_of_the_docs(gateway: Gateway) -> None:
    """docs/gateway.md's example, as written there (only the address and token differ)."""
    case_id = f"gw-curl-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"case_id": case_id, "content": "Paris.", "metadata": GOOD})
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-X", "POST", f"{gateway.url}/v1/cases?wait=30",
        "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
        "-d", body, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    view = case_view(json.loads(out))
    assert (view["case_id"], view["status"]) == (case_id, "passed")


async def test_gateway_serve_as_a_process_until_sigterm(settings: Settings, tmp_path: Path) -> None:
    """The command as compose runs it: ready on its metrics port, the API on its own, and a
    clean exit on SIGTERM."""
    (tmp_path / "tokens.txt").write_text(f"svc {TOKEN}\n")
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **Fleet.env_for(settings),
        "PYTHONSAFEPATH": "1",
        "RATIFIER_METRICS_PORT": str(metrics_port),
    }
    args = ["gateway", "serve", "--port", str(port), "--tokens-file", str(tmp_path / "tokens.txt")]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ratifier", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:

        async def ready() -> bool:
            assert process.returncode is None, "the gateway exited"
            try:
                return (await scrape(metrics_port, "/readyz"))[0] == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(ready, 60, "the gateway's /readyz")
        url = f"http://127.0.0.1:{port}"
        status, document, _ = await call(url, "GET", "/openapi.json", headers={})
        assert (status, document["info"]["title"]) == (200, "Ratifier gateway")
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, out.decode()
    assert b"Traceback" not in out


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
async def test_the_node_example_of_the_docs(gateway: Gateway, tmp_path: Path) -> None:
    """docs/gateway.md's Node block, run as it is written there."""
    script = _write_node_example(tmp_path / "submit.mjs")
    env = {**os.environ, "GATEWAY_URL": gateway.url, "GATEWAY_TOKEN": TOKEN}
    process = await asyncio.create_subprocess_exec(
        "node", str(script), "Paris.", "Capital of France?", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["status"] in ("passed", "escalated")
    status, view, _ = await call(gateway.url, "GET", f"/v1/cases/{result['case_id']}")
    assert (status, view["status"]) == (200, result["status"])


def _write_node_example(path: Path) -> Path:
    docs = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
    text = docs.read_text().split("## With Node", 1)[1]
    path.write_text(text.split("```js\n", 1)[1].split("```", 1)[0])
    return path
