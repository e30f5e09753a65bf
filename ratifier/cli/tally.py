"""``ratifier tally run``: the stateful M-of-N tally (a faust worker)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ratifier.admin import ensure_topics
from ratifier.config import Settings
from ratifier.policy import load_policies


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("tally", help="the stateful M-of-N tally")
    commands = parser.add_subparsers(dest="tally_command", required=True)
    run = commands.add_parser("run", help="run a tally worker (start more to share partitions)")
    run.add_argument("--policies", type=Path, default=None, help="folder of policy *.toml files")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ratifier.streams.worker import run_tally  # imports faust: only when running it

    overrides = {"policy_dir": args.policies} if args.policies else {}
    settings = Settings.from_env(**overrides)
    policies = load_policies(settings.policy_dir)
    asyncio.run(ensure_topics(settings))
    run_tally(settings, policies)
    return 0
