"""``ratifier stack up | down | status | env``: the local Kafka (one node or a 3-node cluster)
and redis-server."""

from __future__ import annotations

import asyncio
import shlex

import click

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from
from ratifier.core.config import Settings

_BROKERS_HELP = "Kafka nodes: 1, the single node, or 3, the local 3-node cluster"
_BROKERS = click.Choice(["1", "3"])


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier stack up                 # Kafka on 127.0.0.1:19092, redis on 16379",
        "ratifier stack up --secure        # SASL_SSL, SCRAM users per role, ACLs",
        'eval "$(ratifier stack env --secure --user tally)"',
        "ratifier stack status",
        'ratifier stack up --brokers 3 && eval "$(ratifier stack env --brokers 3)"',
        "ratifier stack down",
    ),
)
def stack() -> None:
    """Local Kafka (KRaft, from Maven Central jars) and redis.

    Ports, versions and folders come from RATIFIER_KAFKA_PORT, RATIFIER_REDIS_PORT,
    RATIFIER_KAFKA_VERSION, RATIFIER_STATE_DIR and RATIFIER_CACHE_DIR (docs/local-stack.md).
    """


@stack.command(context_settings=CONTEXT_SETTINGS)
@click.option("--no-topics", is_flag=True, help="do not create Ratifier's public topics")
@click.option("--brokers", type=_BROKERS, default="1", help=_BROKERS_HELP)
@click.option(
    "--secure",
    "secure_stack",
    is_flag=True,
    help="SASL_SSL only, SCRAM users per role, deny-by-default ACLs, redis with a password "
    "(docs/security.md); the state dir stays secure",
)
@click.pass_context
def up(ctx: click.Context, no_topics: bool, brokers: str, secure_stack: bool) -> int:
    """Start both services (if needed) and create the topics (and, secure, their ACLs)."""
    from ratifier.core.acl import plan
    from ratifier.io.acl import apply_acls
    from ratifier.io.admin import ensure_topics
    from ratifier.ops import stack as local_stack
    from ratifier.ops.stack import secure

    settings = settings_from(ctx)
    nodes = int(brokers)
    status = local_stack.up(settings, brokers=nodes, secure_stack=secure_stack)
    client = _client_settings(settings, nodes)
    if secure.enabled(settings):
        client = secure.client_settings(settings, secure.ADMIN)
        asyncio.run(apply_acls(client, plan(settings.topic_prefix)))
    if not no_topics:
        asyncio.run(ensure_topics(client))
    click.echo(str(status))
    if secure.enabled(settings):
        click.echo(
            f'connect as a role with: eval "$(ratifier stack env --secure --user ROLE)"; '
            f"users: {', '.join(secure.USERS)}"
        )
    if nodes == 3:
        click.echo('point clients at the cluster with: eval "$(ratifier stack env --brokers 3)"')
    return 0 if status.running else 1


@stack.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--brokers",
    type=_BROKERS,
    default=None,
    help="1: the single node and redis; 3: only the cluster  [default: every one that runs]",
)
@click.pass_context
def down(ctx: click.Context, brokers: str | None) -> int:
    """Stop the services."""
    from ratifier.ops import stack as local_stack

    settings = settings_from(ctx)
    nodes = None if brokers is None else int(brokers)
    local_stack.down(settings, brokers=nodes)
    click.echo(str(local_stack.status(settings, brokers=nodes)))
    return 0


@stack.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--brokers",
    type=_BROKERS,
    default=None,
    help="the Kafka layout to judge  [default: the cluster when only it runs]",
)
@click.pass_context
def status(ctx: click.Context, brokers: str | None) -> int:
    """Show the services; exit code 0 only when Kafka and redis are up."""
    from ratifier.ops import stack as local_stack

    nodes = None if brokers is None else int(brokers)
    current = local_stack.status(settings_from(ctx), brokers=nodes)
    click.echo(str(current))
    return 0 if current.running else 1


@stack.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        'eval "$(ratifier stack env --brokers 3)"   # clients now use the cluster',
        'eval "$(ratifier stack env --brokers 1)"   # and back to the single node',
    ),
)
@click.option("--brokers", type=_BROKERS, default="3", help=_BROKERS_HELP)
@click.option("--secure", "secure_stack", is_flag=True, help="the secure stack's connection")
@click.option("--user", default="admin", help="with --secure: connect as this role's user")
@click.pass_context
def env(ctx: click.Context, brokers: str, secure_stack: bool, user: str) -> int:
    """Print `export` lines that point Ratifier at a layout."""
    settings = settings_from(ctx)
    if secure_stack:
        from ratifier.ops.stack import secure

        for name, value in secure.client_environment(settings, user).items():
            click.echo(f"export {name}={shlex.quote(value)}")
        return 0
    if brokers == "1":  # the defaults, whatever an earlier `eval` exported
        bootstrap, replication = f"127.0.0.1:{settings.kafka_port}", 1
    else:
        cluster = _client_settings(settings, 3)
        bootstrap, replication = cluster.bootstrap_servers, cluster.replication_factor
    click.echo(f"export RATIFIER_BOOTSTRAP_SERVERS={shlex.quote(bootstrap)}")
    click.echo(f"export RATIFIER_REPLICATION_FACTOR={replication}")
    return 0


def _client_settings(settings: Settings, brokers: int) -> Settings:
    """Settings whose clients reach the chosen layout: the cluster's overrides address and
    replication, the single node's are the environment's."""
    if brokers == 1:
        return settings
    from ratifier.ops.stack.cluster import Cluster

    return Cluster.of(settings).settings


commands = (stack,)
