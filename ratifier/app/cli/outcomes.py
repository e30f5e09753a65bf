"""``ratifier outcomes run | tail | show CASE``: every case's one final outcome on
``<prefix>.outcomes``, written by ``run``, read by ``tail`` and ``show``."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import click

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from
from ratifier.app.cli.rows import OUTCOME_HEADER, outcome_row
from ratifier.core.jsonview import to_json
from ratifier.core.models import OutcomeClass

FORMATS = ("json", "table")
_FORMAT = click.option(
    "--format",
    "output",
    type=click.Choice(FORMATS),
    default="json",
    help="json: one JSON object a line; table: one aligned line each, after a header",
)


@click.group(context_settings=CONTEXT_SETTINGS)
def outcomes() -> None:
    """Every case's one final outcome, with provenance, on <prefix>.outcomes."""


@outcomes.command(context_settings=CONTEXT_SETTINGS, epilog=examples("ratifier outcomes run"))
@click.pass_context
def run(ctx: click.Context) -> int:
    """Write outcomes from pass decisions and reviewers' resolutions; keep the trusted store.

    Run one per topic prefix: a second one fences the first and takes over.
    """
    from ratifier.app.configs import outcomes_config
    from ratifier.features.outcomes.runtime import OutcomesService

    settings = settings_from(ctx)
    config = outcomes_config(settings)
    return run_worker(lambda: OutcomesService(config), settings)


@outcomes.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier outcomes tail --format table",
        "ratifier outcomes tail --follow --kind corrected | jq -r .content",
    ),
)
@click.option("--follow", is_flag=True, help="keep waiting for new ones  [default: stop when idle]")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice([k.value for k in OutcomeClass]),
    help="only this kind (repeatable)",
)
@click.option("--limit", type=int, default=None, help="stop after this many")
@_FORMAT
@click.pass_context
def tail(
    ctx: click.Context, follow: bool, kinds: tuple[str, ...], limit: int | None, output: str
) -> int:
    """Print the committed outcomes from the first: kind, reviewer, answer, provenance."""
    from ratifier.io.outcomes_log import committed_outcomes

    settings = settings_from(ctx)
    wanted = set(kinds or (k.value for k in OutcomeClass))

    async def main() -> None:
        shown = 0
        if output == "table":
            _write(OUTCOME_HEADER)
        async for outcome in committed_outcomes(settings, idle_s=None if follow else 2.0):
            if outcome.kind.value not in wanted:
                continue
            _write(to_json(outcome) if output == "json" else outcome_row(outcome))
            shown += 1
            if limit is not None and shown >= limit:
                return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


@outcomes.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier outcomes show CASE_ID", "ratifier outcomes show CASE_ID | jq .kind"),
)
@click.argument("case_id")
@click.pass_context
def show(ctx: click.Context, case_id: str) -> int:
    """Print a case's outcome as JSON; exit code 1 when it has none (yet).

    Reads the topic to its end (a few seconds after the last record): for one case at a time.
    """
    from ratifier.io.outcomes_log import committed_outcomes

    settings = settings_from(ctx)

    async def main() -> str | None:
        async for outcome in committed_outcomes(settings):
            if outcome.case_id == case_id:
                return to_json(outcome)  # one outcome per case: the first is the only one
        return None

    line = asyncio.run(main())
    if line is None:
        click.echo(f"ratifier: case {case_id} has no outcome on the outcomes topic", err=True)
        return 1
    _write(line)
    return 0


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


commands = (outcomes,)
