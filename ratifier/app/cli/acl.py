"""``ratifier acl plan | apply``: least-privilege Kafka ACLs per role (docs/security.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from ratifier.core.acl import Acl

_PRINCIPAL_HELP = "a role's principal, ROLE=User:NAME (repeatable)  [default: User:<role>]"


def _plan_options(command: F) -> F:
    """--prefix, --principal and --role: which ACLs, shared by plan and apply."""
    command = click.option("--role", "roles", multiple=True, help="only these roles (repeatable)")(
        command
    )
    command = click.option("--principal", "principals", multiple=True, help=_PRINCIPAL_HELP)(
        command
    )
    return click.option(
        "--prefix", default=None, help="topic prefix  [default: RATIFIER_TOPIC_PREFIX]"
    )(command)


@click.group(context_settings=CONTEXT_SETTINGS)
def acl() -> None:
    """Kafka ACLs that give each Ratifier role only what it needs."""


@acl.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier acl plan --prefix prod",
        "ratifier acl plan --prefix prod --principal tally=User:svc-tally --role tally",
    ),
)
@_plan_options
@click.pass_context
def plan(
    ctx: click.Context, prefix: str | None, principals: tuple[str, ...], roles: tuple[str, ...]
) -> int:
    """Print the ACLs, one per line: principal, operation, resource type, pattern, name."""
    for entry in _plan(ctx, prefix, principals, roles):
        click.echo(str(entry))
    return 0


@acl.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        'eval "$(ratifier stack env --secure --user admin)"; ratifier acl apply --prefix prod',
    ),
)
@_plan_options
@click.pass_context
def apply(
    ctx: click.Context, prefix: str | None, principals: tuple[str, ...], roles: tuple[str, ...]
) -> int:
    """Create the ACLs through the admin API, connected as a principal allowed to alter ACLs
    (a super user). Creating an ACL that exists is not an error."""
    from ratifier.io.acl import apply_acls

    settings = settings_from(ctx)
    entries = _plan(ctx, prefix, principals, roles)
    created = asyncio.run(apply_acls(settings, entries))
    click.echo(f"{created} ACLs in place for prefix {prefix or settings.topic_prefix}")
    return 0


def _plan(
    ctx: click.Context, prefix: str | None, principals: tuple[str, ...], roles: tuple[str, ...]
) -> list[Acl]:
    from ratifier.core.acl import ROLES, parse_principals
    from ratifier.core.acl import plan as make_plan
    from ratifier.core.errors import ConfigError

    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}")
    chosen = prefix or settings_from(ctx).topic_prefix
    entries = make_plan(chosen, parse_principals(principals))
    return [entry for entry in entries if not roles or entry.role in roles]


commands = (acl,)
