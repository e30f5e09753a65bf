"""``ratifier review serve|list|show|resolve``, ``ratifier outcomes run`` and ``ratifier answer``.

The human side of escalations (docs/review.md): the queue and its web page, the outcomes runtime
that gives every case one outcome, and the trusted answers store.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.options import (
    CONTEXT_SETTINGS,
    console,
    examples,
    setting_option,
    settings_from,
)
from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.jsonview import to_json
from ratifier.core.models import now_ms

if TYPE_CHECKING:
    from ratifier.core.tokens import Reviewers

T = TypeVar("T")

_TOKEN_FILE = click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="file holding your reviewer token (one of RATIFIER_REVIEW_TOKENS_FILE's); never "
    "pass a token on the command line, where other users can see it",
)
_TOKENS_FILE = setting_option(
    "review_tokens_file",
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="reviewers: one 'reviewer-id token' a line",
)


def _with_queue(
    settings: Settings, work: Callable[[Any], Awaitable[T]], reviewers: Reviewers | None = None
) -> T:
    """Run ``work(queue)`` against the settings' review queue, then close the connection.

    ``reviewers``: who may resolve, for work that resolves; reading the queue needs none
    (whoever reaches Redis can read it anyway).
    """
    from ratifier.app.configs import review_config
    from ratifier.features.review.io.queue import ReviewQueue
    from ratifier.io.redis_client import connect

    config = review_config(settings)

    async def main() -> T:
        redis = connect(config.endpoints.redis)
        try:
            queue = ReviewQueue(redis, config, reviewers)
            await queue.ensure_groups()
            return await work(queue)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _reviewer_of(settings: Settings, token_file: Path) -> tuple[Reviewers, str]:
    """The reviewer list (read once) and the reviewer the token file names in it."""
    from ratifier.features.review.core import load_reviewers

    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    reviewers = load_reviewers(settings.review_tokens_file)
    return reviewers, reviewers.identify(token)


@click.group(context_settings=CONTEXT_SETTINGS)
def review() -> None:
    """The human review queue: escalated cases, claimed and resolved by reviewers.

    Resolutions become outcomes on <prefix>.outcomes (run `ratifier outcomes run`); see
    docs/review.md.
    """


@review.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "RATIFIER_REVIEW_TOKENS_FILE=reviewers.txt ratifier review serve",
        "ratifier review serve --port 8470 --host 0.0.0.0 --tokens-file /run/secrets/reviewers",
        "ratifier review serve --host 0.0.0.0 --cert page.pem --key page.key   # HTTPS",
    ),
)
@click.option("--host", default="127.0.0.1", help="address the page listens on")
@click.option("--port", type=int, default=8470, help="port of the page (and its /metrics)")
@click.option(
    "--no-feed",
    is_flag=True,
    help="serve the page only; another process feeds the queue from the escalate topic",
)
@_TOKENS_FILE
@click.option(
    "--cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="serve HTTPS with this PEM certificate (chain); needs --key (docs/security.md)",
)
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="its private key")
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="mark the session cookie Secure: the page is behind a TLS-terminating proxy",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    no_feed: bool,
    review_tokens_file: Path | None,
    cert: Path | None,
    key: Path | None,
    secure_cookies: bool,
) -> int:
    """Serve the reviewer web page, and feed the queue from <prefix>.decisions.escalate."""
    from ratifier.app.configs import review_config
    from ratifier.features.review.runtime.web import ReviewService

    settings = settings_from(ctx, review_tokens_file=review_tokens_file)
    config = review_config(settings)
    return run_worker(
        lambda: ReviewService(
            config,
            host=host,
            port=port,
            feed=not no_feed,
            cert=cert,
            key=key,
            secure_cookies=secure_cookies,
        )
    )


@review.command(
    "list", context_settings=CONTEXT_SETTINGS, epilog=examples("ratifier review list --json")
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
@click.option("--limit", type=int, default=100, help="show at most this many, oldest first")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, limit: int) -> int:
    """The waiting cases, oldest first, with the queue's length and oldest age."""
    settings = settings_from(ctx)

    async def work(queue: Any) -> tuple[Any, list[Any]]:
        return await queue.stats(), await queue.waiting(limit)

    stats, items = _with_queue(settings, work)
    now = now_ms()
    if as_json:
        for item in items:
            line = {
                "case_id": item.case_id,
                "waiting_s": round((now - item.escalated_at_ms) / 1000, 1),
                "reason": item.packet.reason.value,
                "attempts": len(item.packet.attempts),
                "claimed_by": item.claimed_by,
            }
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
        return 0
    out = console()
    out.print(f"waiting: {stats.length}   oldest: {stats.oldest_age_s(now):.0f} s")
    for item in items:
        out.print(
            f"{item.case_id}  {(now - item.escalated_at_ms) / 1000:>8.0f} s  "
            f"{item.packet.reason.value:<24} attempts {len(item.packet.attempts)}  "
            f"{('claimed by ' + item.claimed_by) if item.claimed_by else ''}"
        )
    return 0


@review.command(context_settings=CONTEXT_SETTINGS, epilog=examples("ratifier review show CASE_ID"))
@click.argument("case_id")
@click.pass_context
def show(ctx: click.Context, case_id: str) -> int:
    """Print a case's review item as JSON: state, claim, and the whole escalation packet."""
    settings = settings_from(ctx)

    async def work(queue: Any) -> Any:
        return await queue.require(case_id)

    item = _with_queue(settings, work)
    document = {
        "case_id": item.case_id,
        "state": item.state,
        "claimed_by": item.claimed_by,
        "resolved_by": item.resolved_by,
        "action": item.action,
        "escalated_at_ms": item.escalated_at_ms,
        "packet": orjson.loads(to_json(item.packet)),
    }
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


@review.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier review resolve CASE --token-file ~/.ratifier-token --confirm CANDIDATE_ID",
        "ratifier review resolve CASE --token-file T --correct 'Refunds take 14 days.' "
        "--note 'both attempts said 30'",
        "ratifier review resolve CASE --token-file T --unresolved 'policy does not say'",
    ),
)
@click.argument("case_id")
@_TOKEN_FILE
@click.option("--confirm", "candidate_id", metavar="CANDIDATE_ID", help="confirm this candidate")
@click.option("--correct", "text", metavar="TEXT", help="the right answer (needs --note)")
@click.option("--unresolved", "reason", metavar="REASON", help="cannot settle it, because...")
@click.option("--note", default=None, help="what was wrong (correct), or a remark (confirm)")
@_TOKENS_FILE
@click.pass_context
def resolve(
    ctx: click.Context,
    case_id: str,
    token_file: Path,
    candidate_id: str | None,
    text: str | None,
    reason: str | None,
    note: str | None,
    review_tokens_file: Path | None,
) -> int:
    """Resolve a case: exactly one of --confirm, --correct, --unresolved.

    Works on a case nobody else holds a live claim on (the page's claims are respected).
    """
    chosen = [name for name, v in (("confirm", candidate_id), ("correct", text),
                                   ("unresolved", reason)) if v is not None]  # fmt: skip
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --confirm, --correct, --unresolved")
    settings = settings_from(ctx, review_tokens_file=review_tokens_file)
    reviewers, reviewer = _reviewer_of(settings, token_file)
    action = chosen[0]

    async def work(queue: Any) -> Any:
        return await queue.resolve(
            case_id, reviewer, action, candidate_id=candidate_id, text=text,
            note=reason if action == "unresolved" else note, require_claim=False,
        )  # fmt: skip

    resolution = _with_queue(settings, work, reviewers)
    console().print(f"case {case_id}: {resolution.action.value} by {reviewer}")
    return 0


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier answer CASE_ID", "ratifier answer CASE_ID | jq -r .content"),
)
@click.argument("case_id")
@click.option(
    "--verify",
    is_flag=True,
    help="check the outcomes writer's signature (RATIFIER_OUTCOMES_PUBLIC_KEY; docs/security.md)",
)
@click.pass_context
def answer(ctx: click.Context, case_id: str, verify: bool) -> int:
    """Print a case's trusted answer (confirmed or corrected outcome) as JSON.

    Exit code 1 when it has none: pending, in review, unresolved, or unknown; 2 when --verify
    finds it not signed by the outcomes key.
    """
    from ratifier.io.redis_client import connect
    from ratifier.io.trusted_store import TrustedStore

    settings = settings_from(ctx)

    async def main() -> Any:
        redis = connect(settings)  # what Client.trusted_answer reads, without a Kafka client
        try:
            return await TrustedStore.from_settings(redis, settings).get(case_id, verify=verify)
        finally:
            await redis.aclose()

    outcome = asyncio.run(main())
    if outcome is None:
        click.echo(f"ratifier: case {case_id} has no trusted answer", err=True)
        return 1
    sys.stdout.write(to_json(outcome) + "\n")
    return 0


commands = (review, answer)
