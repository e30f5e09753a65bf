"""Least-privilege Kafka ACLs for each Ratifier role, derived from the topic names.

A role is one kind of process; each runs as its own principal and gets only what its code does:
read these topics, write those, join its consumer group, own its transactional ids. Anything
else is denied by the broker's authorizer (``allow.everyone.if.no.acl.found=false``). The table
in docs/security.md is this module, printed by ``ratifier acl plan``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ratifier.core.errors import ConfigError
from ratifier.core.topics import TopicNames

LITERAL = "LITERAL"
PREFIXED = "PREFIXED"

# Each role's description, in the order `ratifier acl plan` prints them.
ROLES: dict[str, str] = {
    "producer": "producing service (Client SDK): sends candidates, reads decisions and outcomes",
    "validator": "validators: read candidates, write verdicts",
    "tally": "the tally: reads candidates and verdicts, writes decisions, dead letters, changelog",
    "generator": "generators: answer retry decisions with new candidates",
    "monitor": "the governance monitor: reads traffic, writes alerts",
    "outcomes": "the outcomes writer and trusted-answers projector",
    "reviewer": "the reviewer page's feeder: reads escalations",
}


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ALLOW entry: ``principal`` may ``operation`` on the resource (host ``*``)."""

    role: str
    principal: str
    resource_type: str  # TOPIC, GROUP, TRANSACTIONAL_ID
    pattern_type: str  # LITERAL or PREFIXED
    resource_name: str
    operation: str  # READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS

    def __str__(self) -> str:
        return (
            f"{self.principal:<20} {self.operation:<16} {self.resource_type:<16} "
            f"{self.pattern_type:<8} {self.resource_name}"
        )


def default_principals() -> dict[str, str]:
    """``User:<role>``: the SCRAM users of ``ratifier stack up --secure``."""
    return {role: f"User:{role}" for role in ROLES}


def plan(prefix: str, principals: Mapping[str, str] | None = None) -> list[Acl]:
    """Every role's ACLs for topic prefix ``prefix``; ``principals`` maps a role to its
    principal (default ``User:<role>``)."""
    who = {**default_principals(), **(principals or {})}
    unknown = sorted(set(who) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}")
    n = TopicNames(prefix)
    acls: list[Acl] = []

    def grant(
        role: str, kind: str, names: Iterable[str], *ops: str, pattern: str = LITERAL
    ) -> None:
        for name in names:
            for op in ops:
                acls.append(Acl(role, who[role], kind, pattern, name, op))

    grant("producer", "TOPIC", [n.candidates], "WRITE")
    grant("producer", "TOPIC", [*n.decisions, n.deadletter, n.outcomes], "READ")

    grant("validator", "TOPIC", [n.candidates, n.rounds], "READ")
    grant("validator", "TOPIC", [n.verdicts], "WRITE")
    grant("validator", "GROUP", [n.validator_group("")], "READ", pattern=PREFIXED)

    # The tally's changelog (and faust's internal topics) are named <prefix>.tally-*, its
    # transactional ids <prefix>.tally-<partition>: one prefix covers them and nothing else.
    tally_own = f"{n.tally_app_id}-"
    grant("tally", "TOPIC", [n.candidates, n.verdicts], "READ")
    grant("tally", "TOPIC", [*n.decisions, n.deadletter, n.rounds], "WRITE", "DESCRIBE_CONFIGS")
    grant(
        "tally",
        "TOPIC",
        [tally_own],
        "CREATE",
        "READ",
        "WRITE",
        "DESCRIBE_CONFIGS",
        pattern=PREFIXED,
    )
    grant("tally", "TRANSACTIONAL_ID", [tally_own], "WRITE", "DESCRIBE", pattern=PREFIXED)
    grant("tally", "GROUP", [n.tally_app_id], "READ")

    grant("generator", "TOPIC", [n.retry], "READ")
    grant("generator", "TOPIC", [n.candidates], "WRITE")
    grant("generator", "GROUP", [n.generator_group("")], "READ", pattern=PREFIXED)

    grant("monitor", "TOPIC", [n.candidates, n.verdicts, *n.decisions], "READ")
    grant("monitor", "TOPIC", [n.alerts], "WRITE")
    grant("monitor", "GROUP", [n.monitor_group], "READ")

    grant("outcomes", "TOPIC", [n.passed, n.outcomes], "READ")
    grant("outcomes", "TOPIC", [n.outcomes, n.deadletter], "WRITE")
    grant("outcomes", "GROUP", [n.outcomes_group, n.trusted_group], "READ")
    grant("outcomes", "TRANSACTIONAL_ID", [n.outcomes_group], "WRITE", "DESCRIBE")

    grant("reviewer", "TOPIC", [n.escalate], "READ")
    grant("reviewer", "TOPIC", [n.deadletter], "WRITE")
    grant("reviewer", "GROUP", [n.review_feed_group], "READ")
    return acls


def parse_principals(pairs: Iterable[str]) -> dict[str, str]:
    """``role=User:name`` pairs (``--principal``) as a role -> principal map."""
    found: dict[str, str] = {}
    for pair in pairs:
        role, sep, principal = pair.partition("=")
        if not sep or ":" not in principal:
            raise ConfigError(f"expected ROLE=User:NAME, got {pair!r}")
        found[role] = principal
    return found
