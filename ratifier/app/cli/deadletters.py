"""``ratifier deadletters tail | replay``: see what the tally set aside, and send it again."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import textwrap

import click
import orjson

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from
from ratifier.core.jsonview import to_json
from ratifier.core.models import DeadLetter, DeadLetterReason

REASONS = [reason.value for reason in DeadLetterReason]
_REASON = click.Choice(REASONS)
_REASONS_EPILOG = "\n\n\b\nReasons:\n" + "\n".join(
    f"  {line}" for line in textwrap.wrap(", ".join(REASONS), 90)
)


@click.group(context_settings=CONTEXT_SETTINGS)
def deadletters() -> None:
    """Dead letters: show them, replay fixed ones.

    Records the tally set aside, each with its reason (docs/wire-format.md).
    """


@deadletters.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier deadletters tail",
        "ratifier deadletters tail --reason UNKNOWN_POLICY --limit 10",
        "ratifier deadletters tail --follow | jq .reason",
    )
    + _REASONS_EPILOG,
)
@click.option("--follow", is_flag=True, help="keep waiting for new ones  [default: stop when idle]")
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    type=_REASON,
    metavar="REASON",
    help="only this reason (repeatable; the reasons are listed below)",
)
@click.option("--limit", type=int, default=None, help="stop after this many")
@click.pass_context
def tail(ctx: click.Context, follow: bool, reasons: tuple[str, ...], limit: int | None) -> int:
    """Print dead letters as JSON lines: reason, detail, origin, the decoded record."""
    from ratifier.io.deadletters import dead_letters, original_record

    wanted = set(reasons or REASONS)
    settings = settings_from(ctx)

    async def main() -> None:
        shown = 0
        idle_s = None if follow else 2.0
        async for letter in dead_letters(settings, idle_s=idle_s):
            if letter.reason.value not in wanted:
                continue
            sys.stdout.write(_line(letter, original_record(letter)) + "\n")
            sys.stdout.flush()
            shown += 1
            if limit is not None and shown >= limit:
                return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _line(letter: DeadLetter, record: object | None) -> str:
    body = {
        "reason": letter.reason.value,
        "detail": letter.detail,
        "source": f"{letter.source_topic}[{letter.partition}]@{letter.offset}",
        "dead_at_ms": letter.dead_at_ms,
        "record": None if record is None else orjson.loads(to_json(record)),
        "original_bytes": len(letter.original),
    }
    return orjson.dumps(body).decode()


@deadletters.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier deadletters replay --reason UNKNOWN_POLICY --dry-run",
        "ratifier deadletters replay --reason UNKNOWN_POLICY --reason UNKNOWN_VALIDATOR",
    )
    + _REASONS_EPILOG,
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    required=True,
    type=_REASON,
    metavar="REASON",
    help="replay the dead letters of this reason (repeatable; the reasons are listed below)",
)
@click.option("--dry-run", is_flag=True, help="count, send nothing")
@click.option("--limit", type=int, default=None, help="send at most this many")
@click.pass_context
def replay(ctx: click.Context, reasons: tuple[str, ...], dry_run: bool, limit: int | None) -> int:
    """Send dead-lettered candidates and verdicts again to the topic they came from.

    For after the cause is fixed, e.g. the missing policy loaded.
    """
    from ratifier.io.deadletters import replay as replay_records

    report = asyncio.run(
        replay_records(
            settings_from(ctx),
            {DeadLetterReason(reason) for reason in reasons},
            dry_run=dry_run,
            limit=limit,
        )
    )
    verb = "would send" if dry_run else "sent"
    click.echo(
        f"{verb} {report.sent} record(s) {report.by_reason}; "
        f"{report.not_replayable} matching record(s) cannot be replayed (undecodable or excerpt)"
    )
    return 0


commands = (deadletters,)
