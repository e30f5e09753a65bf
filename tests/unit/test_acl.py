"""The least-privilege ACL plan: each role gets what its code does, and nothing more."""

from __future__ import annotations

import pytest

from ratifier.core.acl import ROLES, parse_principals, plan
from ratifier.core.errors import ConfigError
from ratifier.core.topics import TopicNames


def _grants(role: str, prefix: str = "p") -> set[tuple[str, str, str, str]]:
    return {
        (a.operation, a.resource_type, a.pattern_type, a.resource_name)
        for a in plan(prefix)
        if a.role == role
    }


def test_every_role_has_acls_and_its_own_principal() -> None:
    acls = plan("p")
    assert {a.role for a in acls} == set(ROLES)
    assert all(a.principal == f"User:{a.role}" for a in acls)
    assert len(acls) == len(set(acls))  # no entry twice


def test_only_the_owner_writes_each_topic() -> None:
    n = TopicNames("p")
    writers: dict[str, set[str]] = {}
    for a in plan("p"):
        if a.operation == "WRITE" and a.resource_type == "TOPIC":
            writers.setdefault(a.resource_name, set()).add(a.role)
    assert writers[n.candidates] == {"producer", "generator"}
    assert writers[n.verdicts] == {"validator"}
    assert all(writers[topic] == {"tally"} for topic in n.decisions)
    assert writers[n.outcomes] == {"outcomes"}
    assert writers[n.alerts] == {"monitor"}
    assert writers[n.deadletter] == {"tally", "outcomes", "reviewer"}


def test_the_validator_reads_candidates_writes_verdicts_and_joins_its_groups() -> None:
    assert _grants("validator") == {
        ("READ", "TOPIC", "LITERAL", "p.candidates"),
        ("READ", "TOPIC", "LITERAL", "p.rounds"),
        ("WRITE", "TOPIC", "LITERAL", "p.verdicts"),
        ("READ", "GROUP", "PREFIXED", "p.validator."),
    }


def test_the_tally_owns_its_changelog_and_transactional_ids_by_prefix() -> None:
    grants = _grants("tally")
    assert ("CREATE", "TOPIC", "PREFIXED", "p.tally-") in grants
    assert ("WRITE", "TRANSACTIONAL_ID", "PREFIXED", "p.tally-") in grants
    assert ("READ", "GROUP", "LITERAL", "p.tally") in grants
    assert TopicNames("p").tally_changelog.startswith("p.tally-")
    assert not any(op == "CREATE" and name != "p.tally-" for op, _, _, name in grants)


def test_principals_and_unknown_roles() -> None:
    mapped = plan("p", parse_principals(["tally=User:svc-tally"]))
    assert {a.principal for a in mapped if a.role == "tally"} == {"User:svc-tally"}
    with pytest.raises(ConfigError, match="unknown role"):
        plan("p", {"talley": "User:x"})
    with pytest.raises(ConfigError, match="ROLE=User:NAME"):
        parse_principals(["tally"])
