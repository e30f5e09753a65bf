"""``ratifier stack up | down | status | env``: the local Kafka (one node or a 3-node cluster)
and redis-server."""

from __future__ import annotations

import argparse
import asyncio
import shlex

from ratifier.core.config import Settings

_BROKERS_HELP = "Kafka nodes: 1, the single node (default), or 3, the local 3-node cluster"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "stack", help="the local Kafka (KRaft, from Maven Central jars) and redis-server"
    )
    commands = parser.add_subparsers(dest="stack_command", required=True)
    up = commands.add_parser("up", help="start both services (if needed) and create the topics")
    up.add_argument(
        "--no-topics", action="store_true", help="do not create Ratifier's public topics"
    )
    up.add_argument("--brokers", type=int, choices=(1, 3), default=1, help=_BROKERS_HELP)
    up.set_defaults(handler=_up)
    down = commands.add_parser(
        "down", help="stop the services; without --brokers every one that runs"
    )
    down.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=None,
        help="1: the single node and redis; 3: only the cluster",
    )
    down.set_defaults(handler=_down)
    status = commands.add_parser(
        "status", help="show the services; exit code 0 only when Kafka and redis are up"
    )
    status.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=None,
        help="the Kafka layout to judge (default: the cluster when only it runs)",
    )
    status.set_defaults(handler=_status)
    env = commands.add_parser(
        "env", help='print `export` lines that point Ratifier at a layout: eval "$(...)"'
    )
    env.add_argument("--brokers", type=int, choices=(1, 3), default=3, help=_BROKERS_HELP)
    env.set_defaults(handler=_env)


def _up(args: argparse.Namespace) -> int:
    from ratifier.io.admin import ensure_topics
    from ratifier.ops import stack

    settings = Settings.from_env()
    status = stack.up(settings, brokers=args.brokers)
    if not args.no_topics:
        asyncio.run(ensure_topics(_client_settings(settings, args.brokers)))
    print(status)
    if args.brokers == 3:
        print('point clients at the cluster with: eval "$(ratifier stack env --brokers 3)"')
    return 0 if status.running else 1


def _down(args: argparse.Namespace) -> int:
    from ratifier.ops import stack

    settings = Settings.from_env()
    stack.down(settings, brokers=args.brokers)
    print(stack.status(settings, brokers=args.brokers))
    return 0


def _status(args: argparse.Namespace) -> int:
    from ratifier.ops import stack

    status = stack.status(Settings.from_env(), brokers=args.brokers)
    print(status)
    return 0 if status.running else 1


def _env(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.brokers == 1:  # the defaults, whatever an earlier `eval` exported
        bootstrap, replication = f"127.0.0.1:{settings.kafka_port}", 1
    else:
        cluster = _client_settings(settings, args.brokers)
        bootstrap, replication = cluster.bootstrap_servers, cluster.replication_factor
    print(f"export RATIFIER_BOOTSTRAP_SERVERS={shlex.quote(bootstrap)}")
    print(f"export RATIFIER_REPLICATION_FACTOR={replication}")
    return 0


def _client_settings(settings: Settings, brokers: int) -> Settings:
    """Settings whose clients reach the chosen layout: the cluster's overrides address and
    replication, the single node's are the environment's."""
    if brokers == 1:
        return settings
    from ratifier.ops.stack.cluster import Cluster

    return Cluster.of(settings).settings
