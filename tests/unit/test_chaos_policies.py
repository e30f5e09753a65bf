"""The chaos run's governed policy loads, and differs from the default only where it says."""

from __future__ import annotations

from pathlib import Path

from ratifier.app.chaos.forged import Forger
from ratifier.app.chaos.policies import default_policy_text, governed, install_policy
from ratifier.core.config import Settings
from ratifier.core.policy import load_policies, load_policy


def test_governed_policy_holds_packets_and_learns_online(tmp_path: Path) -> None:
    settings = install_policy(Settings.from_env({}), tmp_path, governed(default_policy_text()))
    policy = load_policies(settings.policy_dir)["default"]
    default = load_policy(_written(tmp_path / "plain", default_policy_text()))
    assert policy.complete_packets
    assert not default.complete_packets
    assert policy.learn_reliability
    assert not default.learn_reliability
    assert policy.voters == default.voters
    assert policy.threshold == default.threshold


def test_governed_keeps_the_forgers_keys(tmp_path: Path) -> None:
    forger = Forger(("sim-a", "sim-b", "sim-c", "sim-d", "redteam"))
    policy = load_policy(_written(tmp_path, governed(forger.policy_text())))
    assert policy.complete_packets
    assert policy.learn_reliability
    assert policy.signatures == "optional"


def _written(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "default.toml"
    path.write_text(text)
    return path
