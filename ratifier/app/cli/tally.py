"""``ratifier tally run | status``: the stateful M-of-N tally, on the transactional or the faust
engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.options import (
    CONTEXT_SETTINGS,
    console,
    examples,
    policies_option,
    setting_option,
    settings_from,
)
from ratifier.core.config import TALLY_ENGINES
from ratifier.core.policy import load_policies


@click.group(context_settings=CONTEXT_SETTINGS)
def tally() -> None:
    """The M-of-N tally: verdicts in, decisions out."""


@tally.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier tally run                        # exactly-once, built-in policies",
        "ratifier tally run --policies ./policies  # your *.toml policies",
        "ratifier tally run --engine faust         # the at-least-once faust adapter",
    ),
)
@policies_option()
@setting_option(
    "tally_engine",
    "--engine",
    type=click.Choice(TALLY_ENGINES),
    help="transactional: exactly-once on Kafka transactions; faust: the at-least-once adapter",
)
@setting_option(
    "tally_signing_key",
    "--signing-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="private key file: sign every decision (ratifier keys new tally; docs/signing.md)",
)
@click.pass_context
def run(
    ctx: click.Context,
    policy_dir: Path | None,
    tally_engine: str | None,
    tally_signing_key: Path | None,
) -> int:
    """Run a tally worker; start more to share the partitions."""
    from ratifier.io.admin import ensure_topics

    settings = settings_from(
        ctx, policy_dir=policy_dir, tally_engine=tally_engine, tally_signing_key=tally_signing_key
    )
    policies = load_policies(settings.policy_dir)
    asyncio.run(ensure_topics(settings))
    if settings.tally_engine == "faust":
        from ratifier.streams.engines.faust.worker import (
            run_tally,  # imports faust: only when running it
        )

        run_tally(settings, policies)
        return 0
    from ratifier.streams.engines.transactional import TransactionalTally

    return run_worker(lambda: TransactionalTally(settings, policies), settings)


@tally.command(context_settings=CONTEXT_SETTINGS)
@click.pass_context
def status(ctx: click.Context) -> int:
    """Show this state dir's tally workers.

    Exit code 0 only when every running one is ready (partitions assigned, state restored).
    """
    from rich.table import Table

    from ratifier.io.readiness import all_statuses, is_alive

    settings = settings_from(ctx)
    running = [s for s in all_statuses(settings) if is_alive(s)]
    if not running:
        click.echo(f"no tally worker running (state dir {settings.state_dir})")
        return 1
    table = Table("worker", "engine", "pid", "state", "partitions", box=None)
    for worker in running:
        state = "ready" if worker.ready else "restoring"
        table.add_row(
            worker.worker_id, worker.engine, str(worker.pid), state, _ranges(worker.partitions)
        )
    console().print(table)
    return 0 if all(worker.ready for worker in running) else 1


def _ranges(partitions: Any) -> str:
    return ",".join(str(p) for p in sorted(partitions)) or "-"


commands = (tally,)
