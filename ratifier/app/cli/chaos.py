"""``ratifier chaos run``: the demo pipeline under load and faults, checked; one table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson

from ratifier.app.chaos.policies import POLICIES
from ratifier.app.chaos.scenarios import SCENARIOS
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, setting_option, settings_from
from ratifier.core.config import TALLY_ENGINES


@click.group(context_settings=CONTEXT_SETTINGS)
def chaos() -> None:
    """Fault injection with a correctness check.

    See docs/chaos.md.
    """


@chaos.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier chaos run --quick",
        "ratifier chaos run --scenario tally-kill --scenario tally-pause --cases 500",
        "make chaos                     # every scenario, one broker then the cluster",
    )
    + "\n\n\b\nScenarios:\n"
    + "\n".join(f"  {s.name}: {s.summary}" for s in SCENARIOS),
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice([s.name for s in SCENARIOS]),
    help="run this scenario (repeatable)  [default: all, or the quick set with --quick]",
)
@click.option(
    "--quick",
    is_flag=True,
    help="250 cases per scenario and few faults; alone, the quick set: tally-kill (2 kills), "
    "tally-pause (1 takeover), bad-input (3 rounds)",
)
@click.option(
    "--cases", type=int, default=None, help="cases per scenario  [default: 1500; 250 quick]"
)
@setting_option("tally_engine", "--engine", type=click.Choice(TALLY_ENGINES), help="tally engine")
@click.option("--brokers", type=click.Choice(["1", "3"]), default="1", help="Kafka nodes")
@click.option(
    "--allow-broker-restart",
    is_flag=True,
    help="run broker-restart, which stops the broker at these settings: use a stack of your "
    "own (own ports and state dir), never one others share",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="also write the table as JSON",
)  # fmt: skip
@click.option("--keep-topics", is_flag=True, help="leave each run's topics")
@click.option(
    "--policy",
    type=click.Choice(POLICIES),
    default="default",
    help="the tally's policy: the built-in default, or governed (the same with complete "
    "packets and online-learned reliabilities, so faults also hit that state), or debate (the "
    "same with debate rounds, docs/debate.md)",
)
@click.pass_context
def run(
    ctx: click.Context,
    scenarios: tuple[str, ...],
    quick: bool,
    cases: int | None,
    tally_engine: str | None,
    brokers: str,
    allow_broker_restart: bool,
    json_path: Path | None,
    keep_topics: bool,
    policy: str,
) -> int:
    """Run scenarios and print one table; exit code 1 if a rule fails."""
    from ratifier.app.chaos.report import as_json, format_details, format_table
    from ratifier.app.chaos.runner import RunOptions, run_suite
    from ratifier.app.chaos.scenarios import select

    settings = settings_from(ctx)
    options = RunOptions(
        quick=quick,
        cases=cases,
        engine=tally_engine or settings.tally_engine,
        brokers=int(brokers),
        keep_topics=keep_topics,
        policy=policy,
    )
    chosen = select(list(scenarios) or None, quick)
    skipped = [s.name for s in chosen if s.restarts_broker and not allow_broker_restart]
    if skipped:
        click.echo(f"chaos: skipping {', '.join(skipped)} (needs --allow-broker-restart)")
    chosen = [s for s in chosen if s.name not in skipped]
    rows = asyncio.run(run_suite(settings, chosen, options))
    click.echo()
    click.echo(format_table(rows))
    details = format_details(rows)
    if details:
        click.echo()
        click.echo(details)
    if json_path:
        json_path.write_bytes(orjson.dumps(as_json(rows), option=orjson.OPT_INDENT_2))
    return 0 if rows and all(row.ok for row in rows) else 1


commands = (chaos,)
