"""What each command needs to reach before it runs, checked in one place for every command.

:func:`guard` wraps the callback of every command named in :data:`NEEDS`: first Kafka (and the
topics the command reads or writes), then Redis, each within ``RATIFIER_CONNECT_TIMEOUT_S``;
then the command itself, whose Kafka or Redis connection errors become the same one line. The
line is a :class:`~ratifier.core.errors.Unreachable` (or ``TopicsMissing``), which the entry point
prints as ``ratifier: error: ...`` with exit code 2.

Commands not listed reach neither (``stack`` starts them; ``policy``, ``keys`` and ``calibrate``
work offline; ``chaos run`` starts and restarts its own stacks). A unit test fails for a command
that is in neither list, so a new command has to say what it needs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import click

from ratifier.app.cli.options import settings_from
from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Needs:
    kafka: bool = True
    redis: bool = False
    # TopicNames attributes of the topics that must exist (a wrong prefix fails fast).
    topics: tuple[str, ...] = ()

    def topic_names(self, settings: Settings) -> list[str]:
        names = TopicNames.from_settings(settings)
        found: list[str] = []
        for attribute in self.topics:
            value = getattr(names, attribute)
            found += [value] if isinstance(value, str) else list(value)
        return found


KAFKA = Needs()
REDIS = Needs(kafka=False, redis=True)
BOTH = Needs(redis=True)

NEEDS: dict[str, Needs] = {
    "tally run": KAFKA,  # creates the topics it misses (admin.ensure_topics)
    "tally status": KAFKA,
    # Workers wait for their topics' metadata at start: without them they would fail after the
    # request timeout, with a traceback. `rounds` too: the tally of this release creates it.
    "validator run": Needs(topics=("candidates", "rounds", "verdicts")),
    "generator run": Needs(topics=("retry", "candidates")),
    "submit": Needs(topics=("candidates",)),
    "watch": Needs(topics=("decisions",)),
    "deadletters tail": Needs(topics=("deadletter",)),
    "deadletters replay": Needs(topics=("deadletter",)),
    "outcomes run": Needs(redis=True, topics=("passed", "outcomes", "deadletter")),
    "outcomes tail": Needs(topics=("outcomes",)),
    "outcomes show": Needs(topics=("outcomes",)),
    "replay": KAFKA,
    "review serve": Needs(redis=True, topics=("escalate",)),
    "review list": REDIS,
    "review show": REDIS,
    "review resolve": REDIS,
    "answer": REDIS,
    "monitor run": Needs(redis=True, topics=("decisions", "alerts")),
    "case": REDIS,
    "scoreboard": REDIS,
    "demo": BOTH,
    "gateway serve": KAFKA,
    "acl apply": KAFKA,
}

OFFLINE = frozenset(
    {
        "stack up",
        "stack down",
        "stack status",
        "stack env",
        "policy check",
        "keys new",
        "keys public",
        "calibrate",
        "chaos run",
        "acl plan",
    }
)


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Every runnable command under ``group``, as ("review list", command)."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaves(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


async def check(settings: Settings, needs: Needs) -> None:
    from ratifier.io.reachability import require_kafka, require_redis

    if needs.kafka:
        await require_kafka(settings, needs.topic_names(settings))
    if needs.redis:
        await require_redis(settings)


def guard(root: click.Group) -> None:
    """Wrap every command of :data:`NEEDS` under ``root`` (once, when the CLI is built)."""
    for path, command in leaves(root):
        needs = NEEDS.get(path)
        if needs is not None and command.callback is not None:
            command.callback = _guarded(command.callback, needs)


def _guarded(callback: Callable[..., Any], needs: Needs) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        from ratifier.io.reachability import unreachable_in

        settings = settings_from(click.get_current_context())
        asyncio.run(check(settings, needs))
        try:
            return callback(*args, **kwargs)
        except Exception as exc:
            error = unreachable_in(exc, settings)
            if error is None or error is exc:
                raise
            raise error from exc

    return run
