"""``ratifier stack up | down | status``: the local Kafka broker and redis-server."""

from __future__ import annotations

import argparse
import asyncio

from ratifier.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "stack", help="the local Kafka (KRaft, from Maven Central jars) and redis-server"
    )
    commands = parser.add_subparsers(dest="stack_command", required=True)
    up = commands.add_parser("up", help="start both services (if needed) and create the topics")
    up.add_argument(
        "--no-topics", action="store_true", help="do not create Ratifier's public topics"
    )
    up.set_defaults(handler=_up)
    commands.add_parser("down", help="stop both services").set_defaults(handler=_down)
    commands.add_parser(
        "status", help="show both services; exit code 0 only when both are up"
    ).set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    from ratifier import stack
    from ratifier.admin import ensure_topics

    settings = Settings.from_env()
    status = stack.up(settings)
    if not args.no_topics:
        asyncio.run(ensure_topics(settings))
    print(status)
    return 0 if status.running else 1


def _down(args: argparse.Namespace) -> int:
    from ratifier import stack

    settings = Settings.from_env()
    stack.down(settings)
    print(stack.status(settings))
    return 0


def _status(args: argparse.Namespace) -> int:
    from ratifier import stack

    status = stack.status(Settings.from_env())
    print(status)
    return 0 if status.running else 1
