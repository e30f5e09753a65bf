"""Every command says whether it needs Kafka, Redis or neither (ratifier.app.cli.reach)."""

from __future__ import annotations

from ratifier.app.cli import cli
from ratifier.app.cli.reach import NEEDS, OFFLINE, leaves


def test_every_command_is_listed_once_as_needing_something_or_offline() -> None:
    commands = {path for path, _ in leaves(cli)}
    assert commands == set(NEEDS) | OFFLINE, "add a new command to NEEDS or OFFLINE"
    assert not set(NEEDS) & OFFLINE
