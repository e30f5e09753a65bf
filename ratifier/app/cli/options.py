"""What every command shares: help layout, settings-backed options, examples, Rich output.

Settings stay read in one place (``Settings.from_env``): an option that overrides a setting does
not read the environment itself. Its help names the ``RATIFIER_*`` variable and the default, and
the command passes the option on as an override only when it was given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ratifier.core.config import ENV_PREFIX, Settings

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "show_default": True,
    "max_content_width": 100,
}

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Settings)}
# Settings whose default is computed from others: how the help describes it.
_DERIVED = {
    "bootstrap_servers": "127.0.0.1:<RATIFIER_KAFKA_PORT>",
    "redis_url": "redis://127.0.0.1:<RATIFIER_REDIS_PORT>/0",
    "policy_dir": "the built-in policies",
    "worker_id": "<host>-<pid>",
    "signing_key": "none: verdicts unsigned",
    "tally_signing_key": "none: decisions unsigned",
    "tally_public_key": "none",
}


def setting_help(field: str, text: str) -> str:
    """``text`` followed by the setting's variable and its default, as the help shows them."""
    default = _DERIVED.get(field, _DEFAULTS[field])
    return f"{text}  [env: {ENV_PREFIX}{field.upper()}; default: {default or 'unset'}]"


def setting_option(field: str, *param_decls: str, help: str, **kwargs: Any) -> Callable[[F], F]:
    """An option overriding the setting ``field``; None (not given) leaves the setting alone."""
    return click.option(
        *param_decls,
        field,
        default=None,
        show_default=False,
        help=setting_help(field, help),
        **kwargs,
    )


def policies_option(help: str = "folder of policy *.toml files") -> Callable[[F], F]:
    """``--policies DIR``, overriding RATIFIER_POLICY_DIR (the tally and the monitor load them)."""
    return setting_option(
        "policy_dir", "--policies", type=click.Path(file_okay=False, path_type=Path), help=help
    )


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the environment, the global options, then this command's given options."""
    given = {**ctx.find_root().obj, **overrides}
    return Settings.from_env(**{k: v for k, v in given.items() if v is not None})


def examples(*lines: str) -> str:
    """An epilog of example command lines, kept as written (``\\b`` stops click rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def console() -> Console:
    """Rich output to stdout: plain text when stdout is not a terminal (pipes, tests, scripts),
    and then wide enough that a row stays one line for grep."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=240)
