"""``ratifier submit`` and ``ratifier watch``: the client SDK on the command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid

import click
import orjson

from ratifier.app.cli.loading import parse_metadata
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, setting_option, settings_from
from ratifier.app.cli.rows import DECISION_HEADER, decision_row
from ratifier.core.errors import RatifierError
from ratifier.core.jsonview import to_json


def _quiet_kafka_logs() -> None:
    # aiokafka logs each partition assignment at INFO: noise around the output of these
    # commands (JSON on stdout, one error line on stderr). Still shown with --log-level debug.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier submit 'Paris' --query 'Capital of France?'",
        "ratifier submit 'Paris' --query 'Capital of France?' --wait --timeout 60",
        'ratifier submit "$(cat answer.txt)" --policy strict --meta source=rag --meta user=42',
    ),
)
@click.argument("content")
@click.option("--query", default="", help="the question or context the candidate answers")
@click.option("--policy", default="default", help="name of the policy that judges the case")
@click.option("--category", default="general", help="category, for per-category metrics")
@click.option("--case-id", default=None, help="case id  [default: a new UUID]")
@click.option(
    "--meta", multiple=True, metavar="KEY=VALUE", help="metadata carried with the candidate"
)
@click.option(
    "--wait",
    is_flag=True,
    help="wait for the final outcome; fails at once (exit code 2) if the tally rejects the case",
)
@click.option("--timeout", type=float, default=300.0, help="seconds --wait waits")
@click.pass_context
def submit(
    ctx: click.Context,
    content: str,
    query: str,
    policy: str,
    category: str,
    case_id: str | None,
    meta: tuple[str, ...],
    wait: bool,
    timeout: float,
) -> int:
    """Submit a candidate for a new case.

    CONTENT is the first attempt's answer; the candidate (or with --wait the final outcome)
    is printed as JSON. Idempotent by --case-id: a case that already has its final outcome
    gets no second one (the tally dead-letters the candidate CASE_CLOSED), and with --wait
    that earlier outcome is printed (exit 0, saying so); a case still in progress is waited for.
    """
    from ratifier.io.client import Client

    _quiet_kafka_logs()
    case = case_id or str(uuid.uuid4())  # chosen here so a timeout can name it
    fields = {
        "query": query,
        "policy": policy,
        "category": category,
        "case_id": case,
        "metadata": parse_metadata(meta),
    }
    settings = settings_from(ctx)

    async def main() -> None:
        async with Client(settings, producer="cli") as client:
            if not wait:
                click.echo(to_json(await client.submit(content, **fields)))
                return
            try:
                decided = await client.decide_case(content, timeout_s=timeout, **fields)
            except TimeoutError:
                raise RatifierError(
                    f"no final outcome for case {case} within {timeout:g} s: are a tally, "
                    f"the validators of policy {policy!r} and a generator running?"
                ) from None
            if decided.earlier:
                click.echo(
                    f"case {case} already had a submission: this is its earlier outcome "
                    f"(decision {decided.outcome.decision_id}); nothing new was submitted",
                    err=True,
                )
            click.echo(to_json(decided.outcome))

    asyncio.run(main())
    return 0


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier watch                          # new decisions, until Ctrl-C",
        "ratifier watch --from-beginning --limit 20",
        "ratifier watch --format table           # one aligned line a decision",
        "ratifier --prefix demo-1764650000 watch --from-beginning",
        'ratifier watch --verify --tally-public-key "$(ratifier keys public tally.key | ...)"',
    ),
)
@click.option("--from-beginning", is_flag=True, help="start at the topics' first decisions")
@click.option("--limit", type=int, default=None, help="stop after this many decisions")
@click.option(
    "--verify",
    is_flag=True,
    help="check each decision's signature against the tally's public key and show the result "
    "as signature_check: valid, unsigned, wrong-key or invalid (docs/signing.md)",
)
@setting_option(
    "tally_public_key", "--tally-public-key", help="the tally's public key (base64), for --verify"
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["json", "table"]),
    default="json",
    help="json: one JSON object a line; table: one aligned line each, after a header",
)
@click.pass_context
def watch(
    ctx: click.Context,
    from_beginning: bool,
    limit: int | None,
    verify: bool,
    tally_public_key: str | None,
    output: str,
) -> int:
    """Print decisions live, one JSON line each (or a table line with --format table).

    Pass, retry and escalate decisions, as JSON objects, one a line. With --verify every
    decision is shown, each with its signature_check; without it, decisions not signed by
    the tally's key are left out whenever that key is set.
    """
    from ratifier.io.client import Client

    _quiet_kafka_logs()
    settings = settings_from(ctx, tally_public_key=tally_public_key)
    if verify and not settings.tally_public_key:
        raise RatifierError(
            "--verify needs the tally's public key: --tally-public-key or "
            "RATIFIER_TALLY_PUBLIC_KEY (ratifier keys public tally.key prints it)"
        )

    async def main() -> None:
        async with Client(settings, producer="cli") as client:
            count = 0
            decisions = client.decisions(from_beginning=from_beginning, include_unverified=verify)
            if output == "table":
                sys.stdout.write(DECISION_HEADER + ("  signature" if verify else "") + "\n")
            async for decision in decisions:
                check = client.check_decision(decision).value if verify else None
                if output == "table":
                    line = decision_row(decision) + (f"  {check}" if check else "")
                else:
                    line = to_json(decision)
                    if check:
                        line = to_json_with(line, signature_check=check)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                count += 1
                if limit is not None and count >= limit:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def to_json_with(line: str, **extra: str) -> str:
    """A record's JSON line with ``extra`` members added at the end."""
    return orjson.dumps({**orjson.loads(line), **extra}).decode()


commands = (submit, watch)
