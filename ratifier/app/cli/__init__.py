"""The ``ratifier`` command, on click: parses, then calls the modules that do the work.

Each command group lives in its own module of this package, exposing its click commands or
groups as ``commands``. :func:`main` is the console script: a settings or user error prints one
line, ``ratifier: error: ...``, and exits 2, like a usage error.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

import click

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, setting_help
from ratifier.app.cli.reach import guard
from ratifier.core.errors import RatifierError

# Command modules, in the order `ratifier --help` lists them.
_COMMANDS = (
    "stack",
    "tally",
    "validator",
    "generator",
    "client",
    "deadletters",
    "policy",
    "keys",
    "acl",
    "calibrate",
    "replay",
    "review",
    "outcomes",
    "monitor",
    "gateway",
    "demo",
    "chaos",
)

LOG_LEVELS = ("debug", "info", "warning", "error")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ratifier")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


class _Root(click.Group):
    """Lists commands in the order of ``_COMMANDS`` (click sorts them by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_Root,
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "make demo                         # or: ratifier stack up && ratifier demo",
        "ratifier tally run &              # the tally; start more to share partitions",
        "ratifier submit 'Paris' --query 'Capital of France?' --wait",
        "ratifier watch --from-beginning --limit 10",
        "ratifier COMMAND --help           # each command's options and examples",
    ),
)
@click.version_option(_version(), "--version", prog_name="ratifier", message="%(prog)s %(version)s")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    show_default=False,
    help=setting_help("log_level", "log level of this process"),
)
@click.option(
    "--bootstrap-servers",
    default=None,
    show_default=False,
    help=setting_help("bootstrap_servers", "Kafka brokers, host:port[,host:port...]"),
)
@click.option(
    "--prefix",
    "topic_prefix",
    default=None,
    show_default=False,
    help=setting_help("topic_prefix", "prefix of every topic and consumer group"),
)
@click.pass_context
def cli(
    ctx: click.Context,
    log_level: str | None,
    bootstrap_servers: str | None,
    topic_prefix: str | None,
) -> None:
    """Ratifier: Kafka-native M-of-N consensus for AI outputs.

    Candidates arrive on Kafka; validators publish verdicts; the tally publishes pass, retry
    and escalate decisions to their own topics. Every setting is a RATIFIER_* variable (see
    docs/local-stack.md); the options below override them for one command.
    """
    from ratifier.app.cli.options import settings_from

    ctx.obj = {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix}
    # Settings first: a bad RATIFIER_* variable is one line naming it, not a traceback.
    level = (log_level or settings_from(ctx).log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(level)


# Libraries whose INFO lines (joins, rebalances, metadata) drown Ratifier's own: WARNING unless
# --log-level debug.
LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "aiohttp.access", "asyncio", "urllib3")


def quiet_libraries(level: str) -> None:
    library_level = logging.NOTSET if level == "DEBUG" else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)


for _name in _COMMANDS:
    for _command in importlib.import_module(f"ratifier.app.cli.{_name}").commands:
        cli.add_command(_command)
# Kafka, the topics and Redis checked before each command that needs them (one line if not).
guard(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 the command's own failure, 2 a user error)."""
    try:
        result = cli.main(
            args=None if argv is None else list(argv), prog_name="ratifier", standalone_mode=False
        )
    except click.ClickException as exc:  # usage errors: click's message, exit 2
        exc.show()
        return exc.exit_code
    except RatifierError as exc:
        print(f"ratifier: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, click.Abort):
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
