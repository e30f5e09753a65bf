"""Every example in every ``--help`` parses: real command names, options, choices and types, and
``--param`` names the target accepts (the help is where a newcomer copies from)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

import click
import pytest

from ratifier.app.cli import cli
from ratifier.app.cli.loading import load_target, parse_params

_SEPARATORS = {"&&", "||", "|", "&", ";"}
_SUBSHELL = re.compile(r"\$\(([^()]*)\)")


def _examples(command: click.Command = cli) -> Iterator[str]:
    lines = (command.epilog or "").splitlines()
    if "Examples:" in lines:
        for line in lines[lines.index("Examples:") + 1 :]:
            if not line.strip():
                break
            yield line.strip()
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _examples(sub)


def _invocations(line: str) -> Iterator[list[str]]:
    """The ``ratifier ...`` argument lists in a shell line, those in ``$(...)`` included."""
    for inner in _SUBSHELL.findall(line):
        yield from _invocations(inner)
    segment: list[str] = []
    for token in [*shlex.split(line, comments=True), ";"]:
        if token not in _SEPARATORS:
            segment.append(token)
            continue
        while segment and re.fullmatch(r"[A-Z_]+=\S*", segment[0]):  # VAR=value prefixes
            segment.pop(0)
        if segment and segment[0] == "ratifier":
            yield segment[1:]
        segment = []


EXAMPLES = [(line, args) for line in _examples() for args in _invocations(line)]


def test_the_examples_are_found() -> None:
    assert len(EXAMPLES) > 50
    assert any(args[:2] == ["validator", "run"] for _, args in EXAMPLES)


@pytest.mark.parametrize(("line", "args"), EXAMPLES, ids=[line for line, _ in EXAMPLES])
def test_every_help_example_parses(line: str, args: list[str]) -> None:
    ctx = _parse(cli, "ratifier", args)
    if ctx is None:  # a placeholder command (ratifier COMMAND --help)
        return
    if (
        ctx.command.name == "run"
        and ctx.parent
        and ctx.parent.command.name in ("validator", "generator")
    ):
        target = ctx.params["target"]
        if target.startswith("ratifier."):  # built-ins are built, with the example's --param
            load_target(target, parse_params(ctx.params["params"]))


def _parse(
    command: click.Command, name: str, args: list[str], parent: click.Context | None = None
) -> click.Context | None:
    try:
        ctx = command.make_context(name, list(args), parent=parent)
    except click.exceptions.Exit as done:  # --help, --version
        if done.exit_code != 0:
            raise
        return None
    except click.BadParameter as exc:
        # A file the reader has (their policy, their history) need not exist here.
        if "does not exist" not in str(exc):
            raise
        return None
    if not isinstance(command, click.Group):
        return ctx
    rest = [*ctx._protected_args, *ctx.args]
    if rest and rest[0].isupper():
        return None
    sub_name, sub, sub_args = command.resolve_command(ctx, rest)
    assert sub is not None
    assert sub_name is not None
    return _parse(sub, sub_name, sub_args, ctx)
