"""The gateway's HTTP handlers on aiohttp: bearer auth, size limits, JSON in and out.

Every answer but the event stream is JSON; every error is ``{"error": "..."}`` with its status.
Tokens are never logged (the access log is off) nor quoted in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from ratifier.core.errors import CandidateRejected, RatifierError, UnknownReviewer
from ratifier.core.jsonview import to_json
from ratifier.core.models import Candidate, Decision, PassDecision, RetryRequest
from ratifier.core.tokens import Reviewers
from ratifier.io.client import Decided
from ratifier.runtimes.gateway.index import CaseIndex
from ratifier.runtimes.gateway.openapi import CASE_REQUEST, document

logger = logging.getLogger(__name__)

Submit = Callable[..., Awaitable[Candidate]]
Decide = Callable[..., Awaitable[Decided]]  # Client.decide_case
DecisionStream = Callable[[bool], AsyncIterator[Decision]]

HEARTBEAT_S = 15.0
_FIELDS = frozenset(CASE_REQUEST["properties"])


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    max_body_bytes: int = 256 * 1024  # a request body larger than this is 413
    max_wait_s: float = 60.0  # the longest long-poll (?wait) a request gets
    max_streams: int = 64  # concurrent /v1/decisions streams


def _error(status: int, message: str, **headers: str) -> web.Response:
    body = orjson.dumps({"error": message})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _ok(status: int, body: Any, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


class GatewayApi:
    def __init__(
        self,
        *,
        submit: Submit,
        decide: Decide,
        decisions: DecisionStream,
        index: CaseIndex,
        tokens: Reviewers,
        limits: GatewayLimits,
        registry: CollectorRegistry,
        version: str,
        ready: Callable[[], bool],
    ) -> None:
        self._submit = submit
        self._decide = decide
        self._decisions = decisions
        self.index = index
        self._tokens = tokens
        self.limits = limits
        self._ready = ready
        self._document = orjson.dumps(document(version))
        self._streams: set[asyncio.Task[Any]] = set()
        self.requests = Counter(
            "ratifier_gateway_requests",
            "HTTP requests answered by the gateway",
            ["route", "status"],
            registry=registry,
        )
        self.submitted = Counter(
            "ratifier_gateway_cases_submitted",
            "Candidates the gateway sent to the candidates topic",
            registry=registry,
        )
        self.open_streams = Gauge(
            "ratifier_gateway_streams", "Open /v1/decisions event streams", registry=registry
        )
        app = web.Application(
            client_max_size=limits.max_body_bytes, middlewares=[self._count, self._auth]
        )
        app.router.add_post("/v1/cases", self._post_case)
        app.router.add_get("/v1/cases/{case_id}", self._get_case)
        app.router.add_get("/v1/decisions", self._stream)
        app.router.add_get("/openapi.json", self._openapi)
        self.app = app

    # --- middlewares -----------------------------------------------------------------------

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own (404, 405, 413...) as JSON errors
            response = _error(exc.status, exc.reason)
        self.requests.labels(name, str(response.status)).inc()
        return response

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise UnknownReviewer("no bearer token")
            self._tokens.identify(token.strip())
        except UnknownReviewer:
            return _error(401, "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"})
        return await handler(request)

    # --- handlers ----------------------------------------------------------------------------

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._document, content_type="application/json")

    def _wait_s(self, request: web.Request) -> float:
        raw = request.query.get("wait", "0")
        try:
            wait = float(raw)
        except ValueError:
            raise web.HTTPBadRequest(
                reason=f"wait must be a number of seconds, got {raw!r}"
            ) from None
        if not wait >= 0:
            raise web.HTTPBadRequest(reason="wait must be >= 0")
        return min(wait, self.limits.max_wait_s)

    async def _post_case(self, request: web.Request) -> web.Response:
        if not self._ready():
            return _error(503, "not ready: starting")
        wait = self._wait_s(request)
        fields = _case_fields(await request.read())
        if isinstance(fields, str):
            return _error(400, fields)
        content = fields.pop("content")
        case_id = fields.setdefault("case_id", str(uuid.uuid4()))
        if self.index.decided(case_id):
            # Idempotent: a case this gateway saw decided is not submitted again.
            await self.index.wait_final(case_id, wait)
            return self._case_answer(case_id, earlier=True)
        earlier = False
        try:
            if wait > 0:  # submit and wait in one: a finished case's earlier outcome comes back
                decided = await self._decide(content, timeout_s=wait, **fields)
                self.index.on_decision(decided.outcome)
                earlier = decided.earlier
            else:
                await self._submit(content, **fields)
        except TimeoutError:
            pass  # sent, not decided within ?wait: 202
        except CandidateRejected as exc:
            return _error(422, f"the tally rejected the candidate: {exc.reason}: {exc.detail}")
        except RatifierError as exc:
            return _error(400, str(exc))
        except Exception as exc:  # Kafka refused or timed out: nothing was accepted
            logger.warning("submit failed: %r", exc)
            return _error(503, "the candidate could not be sent to Kafka; try again")
        self.submitted.inc()
        self.index.submitted(case_id)
        logger.debug("case %s submitted", case_id)
        return self._case_answer(case_id, earlier=earlier)

    def _case_answer(self, case_id: str, *, earlier: bool) -> web.Response:
        """200 with the final outcome, or 202 while undecided; ``Ratifier-Earlier: true`` when
        the outcome is the case's earlier one (its id was submitted before)."""
        view = self.index.view(case_id) or {}
        headers = {"Location": f"/v1/cases/{case_id}"}
        if earlier:
            headers["Ratifier-Earlier"] = "true"
        return _ok(200 if view.get("final") else 202, view, **headers)

    async def _get_case(self, request: web.Request) -> web.Response:
        case_id = request.match_info["case_id"]
        await self.index.wait_final(case_id, self._wait_s(request))
        view = self.index.view(case_id)
        if view is None:
            return _error(404, f"no case {case_id} is known to this gateway")
        return _ok(200, view)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if len(self._streams) >= self.limits.max_streams:
            return _error(503, f"too many event streams (limit {self.limits.max_streams})")
        from_beginning = request.query.get("from_beginning", "false").lower() in ("1", "true")
        this = asyncio.current_task()
        assert this is not None
        self._streams.add(this)
        self.open_streams.inc()
        queue: asyncio.Queue[Decision] = asyncio.Queue(maxsize=1000)
        pump = asyncio.create_task(self._pump(from_beginning, queue))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            while True:
                getting = asyncio.ensure_future(queue.get())
                try:
                    await asyncio.wait(
                        {getting, pump}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if not getting.done():
                        getting.cancel()
                if getting.done() and not getting.cancelled():
                    await response.write(_event(getting.result()))
                elif pump.done():
                    pump.result()  # the reader failed: the stream ends with its error logged
                    break
                else:
                    await response.write(b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the client went away
        except Exception:
            logger.exception("decision stream failed")
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            self._streams.discard(this)
            self.open_streams.dec()
        return response

    async def close_streams(self) -> None:
        """End every open event stream (they never end by themselves): before shutting down."""
        tasks = list(self._streams)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, from_beginning: bool, queue: asyncio.Queue[Decision]) -> None:
        async for decision in self._decisions(from_beginning):
            await queue.put(decision)  # a slow client holds its reader back, nothing else


def _event(decision: Decision) -> bytes:
    if isinstance(decision, PassDecision):
        kind = "pass"
    elif isinstance(decision, RetryRequest):
        kind = "retry"
    else:
        kind = "escalate"
    return f"event: {kind}\nid: {decision.decision_id}\ndata: {to_json(decision)}\n\n".encode()


def _case_fields(body: bytes) -> dict[str, Any] | str:
    """The request's fields for ``Client.submit``, or why they are not valid."""
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "the body must be a JSON object"
    if not isinstance(fields, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        return f"unknown fields: {', '.join(unknown)} (allowed: {', '.join(sorted(_FIELDS))})"
    content = fields.get("content")
    if not isinstance(content, str) or not content:
        return "content must be a non-empty string"
    for name in ("query", "policy", "category", "case_id"):
        if name in fields and not isinstance(fields[name], str):
            return f"{name} must be a string"
    case_id = fields.get("case_id")
    if case_id is not None and not 1 <= len(case_id) <= 200:
        return "case_id must be 1-200 characters"
    metadata = fields.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return "metadata must be an object of strings"
    return fields
