"""The reviewer web page: server-rendered HTML on aiohttp, no JavaScript needed.

    GET  /login              token form          POST /login    token -> cookie, or 401
    GET  /                   the queue: length, oldest age, each waiting case
    POST /claim              claim the next case (or your live claim) -> its page
    GET  /item/{case_id}     the escalation packet: every attempt's candidate with the
                             rejected spans highlighted, every validator's vote and reasons
    POST /item/{case_id}/resolve   confirm (candidate) | correct (text + note) | unresolved
    POST /logout
    GET  /metrics, /healthz  Prometheus text (queue length and age, agreement); liveness

Every page but /login, /metrics and /healthz needs a reviewer: the ``ratifier_review``
session cookie set by /login (a random session id, not the token: ``ReviewSessions``), or the
token in an ``Authorization: Bearer`` header (scripts). A wrong token or session gets 401 and
nothing is read or written. The cookie is HttpOnly and SameSite=Strict, so another site cannot
post a resolution with it, and Secure when the page is served over TLS (``--cert/--key``, or
``--secure-cookies`` behind a TLS proxy). Tokens are never logged (the access log is off;
errors never quote them).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final
from urllib.parse import quote

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ratifier.core.errors import (
    AlreadyResolved,
    ConfigError,
    InvalidResolution,
    ReviewError,
    StaleClaim,
    UnknownItem,
    UnknownReviewer,
)
from ratifier.core.models import AttemptRecord, Verdict, Vote, now_ms
from ratifier.core.tokens import Reviewers
from ratifier.features.review.config import ReviewConfig
from ratifier.features.review.core import load_reviewers
from ratifier.features.review.io.metrics import AgreementStore, ReviewGauges
from ratifier.features.review.io.queue import QueuedItem, ReviewQueue
from ratifier.features.review.io.sessions import ReviewSessions
from ratifier.features.review.runtime.feeder import ReviewFeeder
from ratifier.io.redis_client import connect

logger = logging.getLogger(__name__)

COOKIE: Final = "ratifier_review"
_STATUS: Final[dict[type[ReviewError], int]] = {
    UnknownReviewer: 401,
    UnknownItem: 404,
    AlreadyResolved: 409,
    StaleClaim: 409,
    InvalidResolution: 400,
}

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f5f7}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff} header form{margin-left:auto} main{padding:16px 24px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff} td,th{padding:6px 10px;
border-bottom:1px solid #dde;text-align:left;vertical-align:top}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:12px 16px;margin:12px 0}
.content{white-space:pre-wrap;background:#fafbfc;border:1px solid #eee;padding:8px}
mark{background:#ffd24d;padding:0 1px} .ACCEPT{color:#11772b} .REJECT{color:#b3261e}
.ABSTAIN{color:#6b7280} .error{background:#fde8e8;border:1px solid #b3261e;padding:8px 12px}
.notice{background:#e8f4fd;border:1px solid #1f6feb;padding:8px 12px}
.figures span{margin-right:24px} textarea{width:100%;min-height:70px} button{padding:6px 14px}
.actions{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _item_url(case_id: str) -> str:
    """The case page's path: the id percent-encoded (a case id may hold any character).

    Percent-encoding leaves no character HTML reads (``&<>"'``), so the path goes as it is into
    an attribute and into a Location header alike.
    """
    return f"/item/{quote(case_id, safe='')}"


def _age(ms: float) -> str:
    seconds = max(0, int(ms / 1000))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _page(title: str, body: str, reviewer: str | None = None, status: int = 200) -> web.Response:
    who = ""
    if reviewer:
        who = (
            f'<span id="reviewer">reviewer: {_e(reviewer)}</span>'
            '<form method="post" action="/logout"><button>Log out</button></form>'
        )
    text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f" - Ratifier review</title><style>{_STYLE}</style></head><body><header>"
        f'<a href="/"><b>Ratifier review</b></a>{who}</header><main>{body}</main></body></html>'
    )
    return web.Response(text=text, content_type="text/html", status=status)


def highlight(content: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``content`` as HTML with each span [start, end) in a <mark> titled with its reasons."""
    clamped = [
        (max(0, s), min(len(content), e), label)
        for s, e, label in spans
        if min(len(content), e) > max(0, s)
    ]
    cuts = sorted({0, len(content), *(s for s, _, _ in clamped), *(e for _, e, _ in clamped)})
    out = []
    for start, end in itertools.pairwise(cuts):
        labels = [label for s, e, label in clamped if s <= start and end <= e]
        piece = _e(content[start:end])
        if labels:
            out.append(f'<mark title="{_e("; ".join(dict.fromkeys(labels)))}">{piece}</mark>')
        else:
            out.append(piece)
    return "".join(out)


def _reason_spans(verdicts: Iterable[Verdict]) -> list[tuple[int, int, str]]:
    return [
        (r.span.start, r.span.end, f"{v.validator_id}: {r.code}")
        for v in verdicts
        if v.vote is not Vote.ACCEPT
        for r in v.reasons
        if r.span is not None
    ]


def _attempt_html(record: AttemptRecord, actionable: bool) -> str:
    c = record.candidate
    rows = []
    for v in record.verdicts:
        reasons = "<br>".join(
            f"<code>{_e(r.code)}</code> {_e(r.message)}"
            + (f" <small>[{r.span.start}, {r.span.end})</small>" if r.span else "")
            for r in v.reasons
        )
        severity = f" ({_e(v.severity.value)})" if v.severity else ""
        rows.append(
            f'<tr class="vote"><td>{_e(v.validator_id)}</td><td class="{_e(v.vote.value)}">'
            f"{_e(v.vote.value)}{severity}</td><td>{v.confidence:.2f}</td><td>{reasons}</td></tr>"
        )
    confirm = ""
    if actionable:
        confirm = (
            f'<label><input type="radio" name="candidate_id" value="{_e(c.candidate_id)}"'
            f' form="confirm-form"> confirm this candidate</label>'
        )
    return (
        f'<div class="card attempt" id="attempt-{c.attempt}"><h3>Attempt {c.attempt}'
        f" <small>failed: {_e(record.failure.value)} · candidate {_e(c.candidate_id)}"
        f" · by {_e(c.producer)}</small></h3>"
        f'<div class="content">{highlight(c.content, _reason_spans(record.verdicts))}</div>'
        f"{confirm}<table><tr><th>validator</th><th>vote</th><th>confidence</th>"
        f"<th>reasons</th></tr>{''.join(rows)}</table></div>"
    )


def _actions_html(case_id: str) -> str:
    target = f"{_item_url(case_id)}/resolve"
    return (
        '<div class="actions">'
        f'<form class="card" id="confirm-form" method="post" action="{target}">'
        '<input type="hidden" name="action" value="confirm"><h3>Confirm</h3>'
        "<p>Pick the right candidate above.</p><label>Note (optional)"
        '<textarea name="note"></textarea></label><button id="confirm">Confirm</button></form>'
        f'<form class="card" id="correct-form" method="post" action="{target}">'
        '<input type="hidden" name="action" value="correct"><h3>Correct</h3>'
        '<label>Right answer<textarea name="text" id="correct-text"></textarea></label>'
        '<label>Note: what was wrong<textarea name="note" id="correct-note"></textarea></label>'
        '<button id="correct">Correct</button></form>'
        f'<form class="card" id="unresolved-form" method="post" action="{target}">'
        '<input type="hidden" name="action" value="unresolved"><h3>Unresolved</h3>'
        '<label>Reason<textarea name="note" id="unresolved-note"></textarea></label>'
        '<button id="unresolved">Mark unresolved</button></form></div>'
    )


class ReviewApp:
    """The web application over one review queue."""

    def __init__(self, queue: ReviewQueue, reviewers: Reviewers, gauges: ReviewGauges,
                 registry: CollectorRegistry, sessions: ReviewSessions, *,
                 secure_cookies: bool = False) -> None:  # fmt: skip
        self.queue = queue
        self.reviewers = reviewers
        self.gauges = gauges
        self.registry = registry
        self.sessions = sessions
        self.secure_cookies = secure_cookies
        app = web.Application()
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/", self.authed(self.index))
        app.router.add_post("/claim", self.authed(self.claim))
        app.router.add_get("/item/{case_id}", self.authed(self.item))
        app.router.add_post("/item/{case_id}/resolve", self.authed(self.resolve))
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        self.app = app

    # -- identity ----------------------------------------------------------------------------

    async def _reviewer(self, request: web.Request) -> str | None:
        """The reviewer of the request's bearer token or session; UnknownReviewer if it names
        none (a wrong token, an expired session, a reviewer taken off the list)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.reviewers.identify(header[7:].strip())
        session = request.cookies.get(COOKIE)
        if session is None:
            return None
        reviewer = await self.sessions.reviewer(session)
        if reviewer is None:
            raise UnknownReviewer("the session has expired")
        return self.reviewers.check(reviewer)

    def authed(
        self, handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                reviewer = await self._reviewer(request)
            except UnknownReviewer:
                return self._unauthorized("that token or session belongs to no reviewer")
            if reviewer is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther("/login")
                return self._unauthorized("log in first")
            return await handler(request, reviewer)

        return wrapped

    def _unauthorized(self, why: str) -> web.Response:
        body = f'<p class="error" id="error">401: {_e(why)}.</p>{_login_form()}'
        response = _page("Not authorized", body, status=401)
        response.del_cookie(COOKIE)
        return response

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return _page("Log in", _login_form())

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = str(form.get("token", "")).strip()
        try:
            reviewer = self.reviewers.identify(token)
        except UnknownReviewer:
            return self._unauthorized("that token belongs to no reviewer")
        logger.info("reviewer %s logged in", reviewer)
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(
            COOKIE,
            await self.sessions.open(reviewer),
            httponly=True,
            samesite="Strict",
            path="/",
            secure=self.secure_cookies,
            max_age=self.sessions.ttl_s,
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = request.cookies.get(COOKIE)
        if session is not None:
            await self.sessions.close(session)
        response = web.Response(status=303, headers={"Location": "/login"})
        response.del_cookie(COOKIE)
        return response

    # -- pages -------------------------------------------------------------------------------

    async def index(self, request: web.Request, reviewer: str) -> web.StreamResponse:
        stats = await self.queue.stats()
        items = await self.queue.waiting()
        now = now_ms()
        notice = ""
        if "resolved" in request.query:
            notice = (
                f'<p class="notice" id="notice">Resolved case {_e(request.query["resolved"])}.</p>'
            )
        elif "empty" in request.query:
            notice = '<p class="notice" id="notice">Nothing is waiting for review.</p>'
        rows = "".join(
            f'<tr class="queued"><td><a href="{_item_url(i.case_id)}">{_e(i.case_id)}</a></td>'
            f"<td>{_age(now - i.escalated_at_ms)}</td><td>{_e(i.packet.reason.value)}</td>"
            f"<td>{len(i.packet.attempts)}</td><td>{_e(i.packet.policy)} "
            f"{_e(i.packet.policy_version)}</td><td>{_e(i.claimed_by or '')}</td></tr>"
            for i in items
        )
        body = (
            f'{notice}<h2>Review queue</h2><p class="figures">'
            f'<span>waiting: <b id="queue-length">{stats.length}</b></span>'
            f'<span>oldest: <b id="queue-age">{_age(stats.oldest_age_s(now) * 1000)}</b></span></p>'
            '<form method="post" action="/claim"><button id="claim">Review the next case</button>'
            "</form><table><tr><th>case</th><th>waiting</th><th>escalated because</th>"
            f"<th>attempts</th><th>policy</th><th>claimed by</th></tr>{rows}</table>"
        )
        return _page("Queue", body, reviewer)

    async def claim(self, request: web.Request, reviewer: str) -> web.StreamResponse:
        item = await self.queue.claim(reviewer)
        if item is None:
            raise web.HTTPSeeOther("/?empty=1")
        raise web.HTTPSeeOther(_item_url(item.case_id))

    async def item(self, request: web.Request, reviewer: str) -> web.StreamResponse:
        case_id = request.match_info["case_id"]
        try:
            item = await self.queue.require(case_id)
        except UnknownItem as exc:
            return self._error(exc, reviewer)
        return _page(f"Case {case_id}", self._item_html(item, reviewer), reviewer)

    def _item_html(self, item: QueuedItem, reviewer: str, error: str = "") -> str:
        p = item.packet
        first = p.attempts[0].candidate
        mine = item.state == "queued" and item.claimed_by == reviewer
        if item.state == "resolved":
            status = f"resolved ({_e(item.action)}) by {_e(item.resolved_by)}"
        elif mine:
            status = "claimed by you"
        elif item.claimed_by:
            status = f"claimed by {_e(item.claimed_by)}"
        else:
            status = "waiting: claim it from the queue to resolve it"
        attempts = "".join(_attempt_html(a, mine) for a in p.attempts)
        return (
            f'{error}<h2>Case <span id="case-id">{_e(p.case_id)}</span></h2>'
            f'<p id="status">{status}</p>'
            f'<div class="card"><b>Query:</b> {_e(first.query)}<br><b>Category:</b> '
            f"{_e(first.category)} · <b>policy</b> {_e(p.policy)} {_e(p.policy_version)} · "
            f"<b>escalated because</b> {_e(p.reason.value)} · decision {_e(p.decision_id)}</div>"
            f"{attempts}{_actions_html(p.case_id) if mine else ''}"
        )

    async def resolve(self, request: web.Request, reviewer: str) -> web.StreamResponse:
        case_id = request.match_info["case_id"]
        form = await request.post()

        def field(name: str) -> str | None:
            value = form.get(name)
            return str(value) if value is not None else None

        try:
            await self.queue.resolve(
                case_id, reviewer, field("action") or "", candidate_id=field("candidate_id"),
                text=field("text"), note=field("note"),
            )  # fmt: skip
        except ReviewError as exc:
            logger.info("reviewer %s: resolution of %s refused: %s", reviewer, case_id, exc)
            return self._error(exc, reviewer, case_id)
        logger.info("reviewer %s resolved case %s (%s)", reviewer, case_id, field("action"))
        raise web.HTTPSeeOther(f"/?resolved={quote(case_id, safe='')}")

    def _error(self, exc: ReviewError, reviewer: str, case_id: str | None = None) -> web.Response:
        status = _STATUS.get(type(exc), 400)
        message = f'<p class="error" id="error">{status}: {_e(exc)}</p>'
        back = f'<p><a href="{_item_url(case_id)}">back to the case</a> · ' if case_id else "<p>"
        return _page("Refused", f'{message}{back}<a href="/">queue</a></p>', reviewer, status)

    async def metrics(self, request: web.Request) -> web.Response:
        await self.gauges.refresh()
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")


def _login_form() -> str:
    return (
        '<div class="card"><h2>Log in</h2><form method="post" action="/login">'
        '<label>Reviewer token <input type="password" name="token" id="token" size="40" '
        'autocomplete="current-password"></label> <button id="login">Log in</button></form></div>'
    )


class ReviewService:
    """``ratifier review serve``: the page on ``host:port`` and (``feed``) the queue's feeder."""

    def __init__(
        self,
        config: ReviewConfig,
        *,
        host: str,
        port: int,
        feed: bool = True,
        cert: Path | None = None,
        key: Path | None = None,
        secure_cookies: bool = False,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.tls = _server_tls(cert, key)
        self.redis = connect(config.endpoints.redis)
        reviewers = load_reviewers(config.tokens_file)
        self.queue = ReviewQueue(self.redis, config, reviewers)
        registry = CollectorRegistry()
        gauges = ReviewGauges(registry, self.queue, AgreementStore(self.redis, config))
        sessions = ReviewSessions(self.redis, config)
        secure = secure_cookies or self.tls is not None
        self.web = ReviewApp(
            self.queue, reviewers, gauges, registry, sessions, secure_cookies=secure
        )
        self.feeder = ReviewFeeder(config, self.redis) if feed else None
        self._runner = web.AppRunner(self.web.app, access_log=None)  # tokens stay out of logs

    async def start(self) -> None:
        await self.queue.ensure_groups()
        if self.feeder is not None:
            await self.feeder.start()
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls)
        await site.start()
        scheme = "http" if self.tls is None else "https"
        logger.info("review page on %s://%s:%d/ (%d reviewers)", scheme, self.host, self.port,
                    len(self.queue.reviewers.ids) if self.queue.reviewers else 0)  # fmt: skip

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        if self.feeder is not None:
            await self.feeder.run(stop)
        else:
            await stop.wait()

    async def stop(self) -> None:
        try:
            await self._runner.cleanup()
            if self.feeder is not None:
                await self.feeder.stop()
        finally:
            await self.redis.aclose()


def _server_tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The page's TLS context from a PEM certificate (chain) and key; None: plain HTTP."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("the review page's TLS needs both --cert and --key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the review page's certificate {cert}: {exc}") from None
    return context
