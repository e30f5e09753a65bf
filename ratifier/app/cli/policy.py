"""``ratifier policy check FILE...``: validate policy files before a tally loads them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ratifier.core.config import Settings
from ratifier.core.policy import Policy, load_policy


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("policy", help="governance policy files")
    commands = parser.add_subparsers(dest="policy_command", required=True)
    check = commands.add_parser(
        "check",
        help="validate policy files, and that their largest case fits the record size limits "
        "(RATIFIER_MAX_CANDIDATE_BYTES, RATIFIER_MAX_RECORD_BYTES); exit 2 on the first problem",
    )
    check.add_argument("files", type=Path, nargs="+", metavar="FILE", help="policy *.toml files")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from ratifier.streams.limits import SizeLimits

    limits = SizeLimits.from_settings(Settings.from_env())
    for path in args.files:
        policy = load_policy(path)  # PolicyError names the file and field
        limits.check_policy(policy)  # ConfigError names the settings to change
        print(f"{path}: ok, {describe(policy)}; largest case {limits.worst_case_bytes(policy)} B")
    return 0


def describe(policy: Policy) -> str:
    threshold = (
        f"{policy.threshold.accepts} of {len(policy.voters)} accepts"
        if policy.threshold.accepts is not None
        else f"accepting weight share >= {policy.threshold.ratio}"
    )
    red_team = f", red team {', '.join(policy.red_team_ids)}" if policy.red_team_ids else ""
    return (
        f"policy {policy.name!r} version {policy.version!r}: {threshold}{red_team}, "
        f"{policy.max_attempts} attempts, window {policy.window_ms / 1000:g} s"
    )
