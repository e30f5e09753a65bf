"""``ratifier generator run MODULE:CALLABLE``: answers retry requests with new attempts."""

from __future__ import annotations

import argparse

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.loading import load_target, parse_params
from ratifier.core.config import Settings
from ratifier.runtimes.generator import GeneratorWorker


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("generator", help="run the generator loop")
    commands = parser.add_subparsers(dest="generator_command", required=True)
    run = commands.add_parser("run", help="consume retry requests, produce next attempts")
    run.add_argument("target", metavar="MODULE:CALLABLE", help="async RetryRequest -> str|Revision")
    run.add_argument("--id", default="default", dest="generator_id", help="generator group id")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    improve = load_target(args.target, parse_params(args.param))
    settings = Settings.from_env()
    return run_worker(lambda: GeneratorWorker(settings, improve, generator_id=args.generator_id))
