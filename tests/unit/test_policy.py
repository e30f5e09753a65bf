"""Policy files: loading, the built-in default, and validation errors that name file and field."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ratifier.core.errors import PolicyError
from ratifier.core.policy import (
    Policy,
    Role,
    Supermajority,
    Threshold,
    ValidatorSpec,
    load_policies,
    load_policy,
)

EXAMPLE_TOML = """\
name = "example"
version = "2026-11-22.1"
max_attempts = 3
window_seconds = 30

[threshold]
ratio = 0.6

[supermajority]
ratio = 0.75
min_rounds = 3

[veto]
action = "escalate"

[[validators]]
id = "sim-a"
weight = 1.0
role = "voter"
[validators.category_weights]
medical = 2.0

[[validators]]
id = "sim-b"

[[validators]]
id = "red.team_1"
role = "red-team"
"""


def valid_data() -> dict[str, Any]:
    return {
        "name": "p",
        "version": "1",
        "threshold": {"accepts": 2},
        "validators": [{"id": "a"}, {"id": "b"}, {"id": "c", "role": "red-team"}],
    }


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_default_policy() -> None:
    policies = load_policies()
    assert set(policies) == {"default"}
    default = policies["default"]
    assert [v.id for v in default.voters] == ["sim-a", "sim-b", "sim-c", "sim-d"]
    assert [v.id for v in default.red_team] == ["redteam"]
    assert default.threshold == Threshold(accepts=3)
    assert default.max_attempts == 3
    assert default.window_ms == 30_000
    assert default.supermajority is None
    assert default.veto_escalates is False
    assert default.version


def test_example_file_loads_every_field(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "example.toml", EXAMPLE_TOML))
    assert policy.name == "example"
    assert policy.version == "2026-11-22.1"
    assert policy.threshold == Threshold(ratio=0.6)
    assert policy.supermajority == Supermajority(ratio=0.75, min_rounds=3)
    assert policy.veto_escalates is True
    assert policy.window_ms == 30_000
    assert policy.source == str(tmp_path / "example.toml")
    assert policy.validators[0] == ValidatorSpec("sim-a", 1.0, Role.VOTER, {"medical": 2.0})
    assert policy.validators[2].role is Role.RED_TEAM


def test_weights_per_category(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "example.toml", EXAMPLE_TOML))
    spec = policy.validator("sim-a")
    assert spec is not None
    assert spec.weight_for("medical") == 2.0
    assert spec.weight_for("legal") == 1.0
    assert policy.voter_weights("medical").weights == (("sim-a", 2.0), ("sim-b", 1.0))
    assert policy.voter_weights("medical").total == 3.0
    assert policy.voter_weights("legal").total == 2.0
    # Cached: the same table object every time, and red-team validators never in it.
    assert policy.voter_weights("legal") is policy.voter_weights("other")
    assert policy.validator("nobody") is None


def test_fractional_window_and_defaults() -> None:
    data = valid_data()
    data["window_seconds"] = 0.25
    policy = Policy.from_mapping(data, "mem")
    assert policy.window_ms == 250
    assert policy.max_attempts == 3
    assert policy.validators[0].weight == 1.0


def test_source_is_not_part_of_identity() -> None:
    assert Policy.from_mapping(valid_data(), "x.toml") == Policy.from_mapping(valid_data(), "y")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets a dotted path (list items by index) in the policy data."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


INVALID = [
    pytest.param(_set("validators.1.id", "a"), "duplicate validator id 'a'", id="duplicate-id"),
    pytest.param(_set("validators.0.id", "a b"), "validators.id 'a b'", id="bad-id-chars"),
    pytest.param(_set("validators.0.weight", 0), "weight must be > 0", id="zero-weight"),
    pytest.param(_set("validators.0.weight", -1.5), "weight must be > 0", id="negative-weight"),
    pytest.param(
        _set("validators.0.category_weights", {"med": 0}),
        "category_weights.med must be > 0",
        id="zero-category-weight",
    ),
    pytest.param(
        _set("validators", [{"id": "r", "role": "red-team"}]),
        "at least one validator must be a voter",
        id="no-voters",
    ),
    pytest.param(_set("validators", []), "at least one validator", id="no-validators"),
    pytest.param(_delete("validators"), "[[validators]]", id="validators-missing"),
    pytest.param(_set("validators.0.role", "judge"), "validators[0].role", id="bad-role"),
    pytest.param(_set("threshold.ratio", 0.5), "exactly one of", id="accepts-and-ratio"),
    pytest.param(_set("threshold", {}), "exactly one of", id="neither-accepts-nor-ratio"),
    pytest.param(_delete("threshold"), "[threshold] is required", id="threshold-missing"),
    pytest.param(_set("threshold.accepts", 0), "threshold.accepts must be between", id="m-0"),
    pytest.param(_set("threshold.accepts", 3), "number of voters (2)", id="m-above-voters"),
    pytest.param(_set("threshold.accepts", True), "threshold.accepts must be an int", id="bool"),
    pytest.param(_set("threshold", {"ratio": 0}), "threshold.ratio must be in", id="ratio-0"),
    pytest.param(_set("threshold", {"ratio": 1.5}), "threshold.ratio must be in", id="ratio>1"),
    pytest.param(_set("max_attempts", 0), "max_attempts must be >= 1", id="attempts-0"),
    pytest.param(_set("max_attempts", "3"), "max_attempts must be an integer", id="attempts-str"),
    pytest.param(_set("window_seconds", 0), "window_seconds must be > 0", id="window-0"),
    pytest.param(_set("window_seconds", -1), "window_seconds must be > 0", id="window-negative"),
    pytest.param(
        _set("supermajority", {"ratio": 0, "min_rounds": 1}),
        "supermajority.ratio must be in",
        id="super-ratio-0",
    ),
    pytest.param(
        _set("supermajority", {"ratio": 0.8, "min_rounds": 0}),
        "supermajority.min_rounds must be between 1 and max_attempts (3)",
        id="min-rounds-0",
    ),
    pytest.param(
        _set("supermajority", {"ratio": 0.8, "min_rounds": 4}),
        "min_rounds must be between",
        id="min-rounds-above-attempts",
    ),
    pytest.param(
        _set("supermajority", {"ratio": 0.8}), "supermajority.min_rounds is required", id="sm"
    ),
    pytest.param(_set("veto", {"action": "ignore"}), "veto.action must be", id="bad-veto"),
    pytest.param(_set("treshold", {"accepts": 2}), "unknown key(s) treshold", id="typo-top"),
    pytest.param(_set("threshold.acceps", 2), "threshold.acceps", id="typo-threshold"),
    pytest.param(_set("validators.0.wieght", 2), "validators[0].wieght", id="typo-validator"),
    pytest.param(_set("veto.when", "x"), "veto.when", id="typo-veto"),
    pytest.param(_set("supermajority.rounds", 2), "supermajority.rounds", id="typo-super"),
    pytest.param(_delete("version"), "version is required", id="version-missing"),
    pytest.param(_set("name", ""), "name must be a non-empty string", id="empty-name"),
    pytest.param(_set("name", "a/b"), "name 'a/b'", id="bad-name"),
    pytest.param(_set("validators.0", "a"), "validators[0] must be a table", id="not-a-table"),
]


@pytest.mark.parametrize(("mutate", "message"), INVALID)
def test_invalid_policy_names_file_and_field(
    mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = copy.deepcopy(valid_data())
    mutate(data)
    with pytest.raises(PolicyError) as caught:
        Policy.from_mapping(data, "policies/bad.toml")
    assert str(caught.value).startswith("policies/bad.toml: ")
    assert message in str(caught.value)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(PolicyError, match=r"threshold\.accepts"):
        Policy("p", "1", (ValidatorSpec("a"),), Threshold(accepts=2))


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.toml", "name = \n")
    with pytest.raises(PolicyError, match=r"broken\.toml: not valid TOML"):
        load_policy(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.toml")


def test_load_policies_from_folder(tmp_path: Path) -> None:
    write(tmp_path, "example.toml", EXAMPLE_TOML)
    write(tmp_path, "strict.toml", EXAMPLE_TOML.replace('"example"', '"strict"'))
    write(tmp_path, "notes.md", "not a policy")
    assert sorted(load_policies(tmp_path)) == ["example", "strict"]


def test_load_policies_rejects_duplicate_names(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", EXAMPLE_TOML)
    write(tmp_path, "b.toml", EXAMPLE_TOML)
    with pytest.raises(PolicyError, match=r"b\.toml: policy name 'example' is already defined in"):
        load_policies(tmp_path)


def test_load_policies_needs_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no policy files"):
        load_policies(tmp_path)
    with pytest.raises(PolicyError, match="does not exist"):
        load_policies(tmp_path / "absent")


def test_load_policies_reports_the_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "good.toml", EXAMPLE_TOML)
    write(tmp_path, "typo.toml", EXAMPLE_TOML.replace("max_attempts", "max_atempts"))
    with pytest.raises(PolicyError, match=r"typo\.toml: unknown key\(s\) max_atempts"):
        load_policies(tmp_path)


def test_every_example_in_the_policy_docs_loads() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    for block in blocks:
        Policy.from_mapping(tomllib.loads(block), "docs/policy.md")


def test_policies_are_hashable(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "example.toml", EXAMPLE_TOML))
    again = load_policy(write(tmp_path, "again.toml", EXAMPLE_TOML))
    assert hash(policy) == hash(again)
    assert len({policy, again, load_policies()["default"]}) == 2
