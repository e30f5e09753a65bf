"""``ratifier chaos run``: the demo pipeline under load and faults, checked; one table."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import orjson

from ratifier.core.config import TALLY_ENGINES, Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ratifier.app.chaos.scenarios import SCENARIOS

    parser = subparsers.add_parser("chaos", help="fault-injection suite with a correctness check")
    commands = parser.add_subparsers(dest="chaos_command", required=True)
    run = commands.add_parser(
        "run",
        help="run scenarios (default: all) and print one table; exit code 1 if a rule fails",
        description="Scenarios: "
        + "; ".join(f"{s.name}: {s.summary}" for s in SCENARIOS)
        + ". See docs/chaos.md.",
    )
    run.add_argument(
        "--scenario",
        action="append",
        choices=[s.name for s in SCENARIOS],
        help="run this scenario (repeatable; default: all, or the quick set with --quick)",
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help="250 cases per scenario and few faults; by default the quick set: tally-kill "
        "(2 kills), tally-pause (1 takeover), bad-input (3 rounds)",
    )
    run.add_argument("--cases", type=int, default=None, help="cases per scenario (1500; 250)")
    run.add_argument(
        "--engine",
        choices=TALLY_ENGINES,
        default=None,
        help="tally engine (default: RATIFIER_TALLY_ENGINE)",
    )
    run.add_argument("--brokers", type=int, choices=(1, 3), default=1)
    run.add_argument(
        "--allow-broker-restart",
        action="store_true",
        help="run broker-restart, which stops the broker at these settings: use a stack of "
        "your own (own ports and state dir), never one others share",
    )
    run.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    run.add_argument("--keep-topics", action="store_true", help="leave each run's topics")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ratifier.app.chaos.report import as_json, format_details, format_table
    from ratifier.app.chaos.runner import RunOptions, run_suite
    from ratifier.app.chaos.scenarios import select

    settings = Settings.from_env()
    options = RunOptions(
        quick=args.quick,
        cases=args.cases,
        engine=args.engine or settings.tally_engine,
        brokers=args.brokers,
        keep_topics=args.keep_topics,
    )
    scenarios = select(args.scenario, args.quick)
    skipped = [s.name for s in scenarios if s.restarts_broker and not args.allow_broker_restart]
    if skipped:
        print(f"chaos: skipping {', '.join(skipped)} (needs --allow-broker-restart)")
    scenarios = [s for s in scenarios if s.name not in skipped]
    rows = asyncio.run(run_suite(settings, scenarios, options))
    print()
    print(format_table(rows))
    details = format_details(rows)
    if details:
        print()
        print(details)
    if args.json:
        args.json.write_bytes(orjson.dumps(as_json(rows), option=orjson.OPT_INDENT_2))
    return 0 if rows and all(row.ok for row in rows) else 1
