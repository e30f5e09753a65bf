"""``ratifier policy check FILE...``: validate policy files before a tally loads them."""

from __future__ import annotations

from collections.abc import Mapping
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
    from ratifier.streams.rules.limits import SizeLimits

    limits = SizeLimits.from_settings(settings_from(ctx))
    for path in files:
        loaded = load_policy(path)  # PolicyError names the file and field
        limits.check_policy(loaded)  # ConfigError names the settings to change
        click.echo(
            f"{path}: ok, {describe(loaded)}; largest case {limits.worst_case_bytes(loaded)} B"
        )
        for line in rules(loaded):
            click.echo(f"  {line}")
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
        + (
            f", debate {policy.debate.min_rounds}..{policy.debate.max_rounds} rounds"
            if policy.debate is not None
            else ""
        )
    )


def rules(policy: Policy) -> list[str]:
    """Every decision rule of ``policy``, one line each, defaults included (docs/policy.md)."""
    voters = ", ".join(_weighted(v.id, v.weight, v.category_weights) for v in policy.voters)
    rule = policy.supermajority
    learning = (
        f"online (model {policy.learned_model or policy.name!r}, start {policy.learned_prior:g} "
        f"as if seen {policy.learned_strength:g} times)"
        if policy.learn_reliability
        else "fixed: " + ", ".join(f"{v.id} {v.reliability:g}" for v in policy.voters)
    )
    veto = "escalates at once" if policy.veto_escalates else "fails the attempt (retry)"
    guard = policy.max_retry_similarity
    return [
        f"voters: {voters}",
        f"threshold: {_threshold(policy)}",
        "supermajority: "
        + (
            f"before attempt {rule.min_rounds}, a pass also needs accepting weight share "
            f">= {rule.ratio:g}"
            if rule is not None
            else "none"
        ),
        f"debate: {_debate(policy)}",
        "red team: "
        + (
            f"{', '.join(policy.red_team_ids)}; a pass waits for it; a CRITICAL rejection {veto}"
            if policy.red_team_ids
            else "none"
        ),
        f"attempts: {policy.max_attempts}, window {policy.window_ms / 1000:g} s each; earlier "
        + (
            "attempts referenced (stubs naming their retry requests)"
            if policy.reference_earlier_attempts
            else "attempts carried in full"
        ),
        "complete packets: "
        + (
            "on (a certain failure waits for every validator or the window)"
            if policy.complete_packets
            else "off (a certain failure is decided at once)"
        ),
        "retry guard: "
        + (f"escalate a retry at least {guard:g} similar" if guard is not None else "off"),
        f"confidence: prior {policy.prior:g}; reliability {learning}",
        f"signatures: {policy.signatures.value}",
    ]


def _debate(policy: Policy) -> str:
    debate = policy.debate
    if debate is None:
        return "none (one round per attempt)"
    peers = "anonymised" if debate.anonymise else "named"
    return (
        f"rounds {debate.min_rounds}..{debate.max_rounds} per attempt, each seeing the last "
        f"round's verdicts ({peers}); from round {debate.min_rounds} a voter weight share "
        f">= {debate.supermajority:g} accepting passes (threshold too), rejecting fails; "
        f"none by round {debate.max_rounds}: NO_SUPERMAJORITY"
    )


def _threshold(policy: Policy) -> str:
    if policy.threshold.accepts is not None:
        return f"at least {policy.threshold.accepts} of {len(policy.voters)} voters accept"
    return f"accepting weight share >= {policy.threshold.ratio:g}"


def _weighted(validator_id: str, weight: float, categories: Mapping[str, float]) -> str:
    extra = "".join(f", {category} {w:g}" for category, w in sorted(categories.items()))
    return (
        validator_id if weight == 1 and not extra else f"{validator_id} (weight {weight:g}{extra})"
    )


commands = (policy,)
