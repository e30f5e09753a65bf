"""The ``ratifier`` command: parses arguments, then calls the modules that do the work.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``handler`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ratifier.core.errors import RatifierError

# Command-group modules, in the order `ratifier --help` lists them.
_GROUPS = (
    "stack",
    "tally",
    "validator",
    "generator",
    "client",
    "deadletters",
    "policy",
    "demo",
    "chaos",
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ratifier")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratifier", description="Kafka-native M-of-N consensus for AI outputs."
    )
    parser.add_argument("--log-level", default=None, help="override RATIFIER_LOG_LEVEL")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _GROUPS:
        importlib.import_module(f"ratifier.app.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ratifier.core.config import Settings

    try:
        # Settings first: a bad RATIFIER_* variable is one line naming it, not a traceback.
        level = (args.log_level or Settings.from_env().log_level).upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(args.handler(args) or 0)
    except RatifierError as exc:
        print(f"ratifier: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
