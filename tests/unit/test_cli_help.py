"""The CLI reads well to a newcomer: every command and option explains itself."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from ratifier.app.cli import cli, main


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(cli))


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "ratifier")
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    command = _command(path)
    assert (command.help or "").strip(), f"{path} has no help"
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert (param.help or "").strip(), f"{path} {param.opts} has no help"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "ratifier")
def test_help_exits_zero(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage: ratifier")


def test_options_that_override_a_setting_name_its_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tally", "run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "[env: RATIFIER_POLICY_DIR; default: the built-in policies]" in out
    assert "[env: RATIFIER_TALLY_ENGINE; default: transactional]" in out


def test_a_wrong_option_is_a_usage_error_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tally", "run", "--engine", "spark"]) == 2
    assert "Invalid value for '--engine'" in capsys.readouterr().err


def test_global_options_reach_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RATIFIER_TOPIC_PREFIX", "fine")
    assert main(["--prefix", "bad prefix!", "tally", "status"]) == 2
    assert "RATIFIER_TOPIC_PREFIX may hold only" in capsys.readouterr().err
