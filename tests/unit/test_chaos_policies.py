"""The chaos run's governed policy loads, and differs from the default only where it says."""

from __future__ import annotations

from pathlib import Path

from ratifier.app.chaos.forged import Forger
from ratifier.app.chaos.policies import debating, default_policy_text, governed, install_policy
from ratifier.core.config import Settings
from ratifier.core.policy import Debate, Policy, load_policies
from ratifier.streams.rules.limits import SizeLimits


def test_governed_policy_holds_packets_and_learns_online(tmp_path: Path) -> None:
    policy = _installed(tmp_path, governed(default_policy_text()))
    default = load_policies()["default"]  # the built-in file default_policy_text() reads
    assert policy.complete_packets
    assert default.complete_packets  # the default since packets were measured to cost ~nothing
    assert policy.learn_reliability
    assert not default.learn_reliability
    assert policy.voters == default.voters
    assert policy.threshold == default.threshold


def test_governed_keeps_the_forgers_keys(tmp_path: Path) -> None:
    forger = Forger(("sim-a", "sim-b", "sim-c", "sim-d", "redteam"))
    policy = _installed(tmp_path, governed(forger.policy_text()))
    assert policy.complete_packets
    assert policy.learn_reliability
    assert policy.signatures == "optional"


def test_the_debate_policy_debates_and_fits_a_record(tmp_path: Path) -> None:
    policy = _installed(tmp_path, debating(default_policy_text()))
    default = load_policies()["default"]
    assert policy.debate == Debate(min_rounds=2, max_rounds=3, supermajority=0.75)
    assert policy.reference_earlier_attempts
    assert policy.voters == default.voters
    SizeLimits.from_settings(Settings.from_env({})).check_policy(policy)  # the tally would start


def _installed(folder: Path, text: str) -> Policy:
    """``text`` installed as a chaos run does, loaded as the tally would."""
    settings = install_policy(Settings.from_env({}), folder, text)
    return load_policies(settings.policy_dir)["default"]
