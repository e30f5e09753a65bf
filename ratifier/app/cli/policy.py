"""``ratifier policy check FILE...``: validate policy files before a tally loads them."""

from __future__ import annotations

from pathlib import Path

import click

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from
from ratifier.core.policy import Policy, load_policy
from ratifier.core.signing import SignatureMode


@click.group(context_settings=CONTEXT_SETTINGS)
def policy() -> None:
    """Check governance policy files.

    A policy sets the threshold, weights, red team and attempts (docs/policy.md).
    """


@policy.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier policy check policies/*.toml"),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def check(ctx: click.Context, files: tuple[Path, ...]) -> int:
    """Validate policy FILES, and that their largest case fits the record size limits.

    The limits are RATIFIER_MAX_CANDIDATE_BYTES and RATIFIER_MAX_RECORD_BYTES. Exit code 2 on
    the first problem, naming the file and field.
    """
    from ratifier.streams.limits import SizeLimits

    limits = SizeLimits.from_settings(settings_from(ctx))
    for path in files:
        loaded = load_policy(path)  # PolicyError names the file and field
        limits.check_policy(loaded)  # ConfigError names the settings to change
        click.echo(
            f"{path}: ok, {describe(loaded)}; largest case {limits.worst_case_bytes(loaded)} B"
        )
    return 0


def describe(policy: Policy) -> str:
    threshold = (
        f"{policy.threshold.accepts} of {len(policy.voters)} accepts"
        if policy.threshold.accepts is not None
        else f"accepting weight share >= {policy.threshold.ratio}"
    )
    red_team = f", red team {', '.join(policy.red_team_ids)}" if policy.red_team_ids else ""
    signatures = (
        f", signatures {policy.signatures.value} ({len(policy.key_ring)} keys)"
        if policy.signatures is not SignatureMode.OFF
        else ""
    )
    return (
        f"policy {policy.name!r} version {policy.version!r}: {threshold}{red_team}, "
        f"{policy.max_attempts} attempts, window {policy.window_ms / 1000:g} s{signatures}"
    )


commands = (policy,)
