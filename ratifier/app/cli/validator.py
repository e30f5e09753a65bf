"""``ratifier validator run MODULE:CALLABLE --id ID``: one instance of a validator group."""

from __future__ import annotations

import argparse

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.loading import load_target, parse_params
from ratifier.core.config import Settings
from ratifier.validators.runtime import ValidatorWorker


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("validator", help="run validators")
    commands = parser.add_subparsers(dest="validator_command", required=True)
    run = commands.add_parser(
        "run", help="judge candidates as consumer group <prefix>.validator.<ID>"
    )
    run.add_argument("target", metavar="MODULE:CALLABLE", help="async Candidate -> Judgement")
    run.add_argument("--id", required=True, dest="validator_id", help="validator id (the group)")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="call MODULE:CALLABLE as a factory with these keyword arguments (JSON values)",
    )
    run.add_argument("--version", default=None, help="validator version recorded in verdicts")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds before ABSTAIN")
    run.add_argument("--concurrency", type=int, default=16, help="candidates judged at once")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    judge = load_target(args.target, parse_params(args.param))
    settings = Settings.from_env()
    return run_worker(
        lambda: ValidatorWorker(
            settings,
            args.validator_id,
            judge,
            version=args.version,
            timeout_s=args.timeout,
            concurrency=args.concurrency,
        )
    )
