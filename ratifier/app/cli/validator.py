"""``ratifier validator run MODULE:CALLABLE --id ID``: one instance of a validator group."""

from __future__ import annotations

from pathlib import Path

import click

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.loading import load_target, parse_params
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, setting_option, settings_from

SIMULATED = "ratifier.validators.builtin.simulated:SimulatedValidator"


@click.group(context_settings=CONTEXT_SETTINGS)
def validator() -> None:
    """Validators, one consumer group per id."""


@validator.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        f"ratifier validator run {SIMULATED} --id judge-1 --param error_rate=0.1",
        "ratifier validator run mypkg.judges:fact_check --id facts --timeout 20",
    ),
)
@click.argument("target", metavar="MODULE:CALLABLE")
@click.option("--id", "validator_id", required=True, help="validator id: the consumer group's name")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="call MODULE:CALLABLE as a factory with these keyword arguments (JSON values; repeatable)",
)
@click.option("--version", default=None, help="validator version recorded in verdicts")
@click.option("--timeout", type=float, default=30.0, help="seconds before a verdict is ABSTAIN")
@click.option("--concurrency", type=click.IntRange(1), default=16, help="candidates judged at once")
@click.option(
    "--max-in-flight", type=click.IntRange(1), default=None,
    help="candidates read and not yet done (default: 4 per --concurrency slot, +1024 with --delay)",
)  # fmt: skip
@click.option(
    "--delay", type=click.FloatRange(0), default=0.0,
    help="seconds to wait after reading a candidate before judging it (a later wave)",
)  # fmt: skip
@click.option(
    "--skip-decided", is_flag=True, default=False,
    help="skip candidates whose attempt the tally has already decided (sequential consensus)",
)  # fmt: skip
@click.option(
    "--requests-per-min", type=click.FloatRange(0, min_open=True), default=None,
    help="rate limit: judge calls per minute (docs/validators.md, Rate limits)",
)  # fmt: skip
@click.option(
    "--tokens-per-min", type=click.FloatRange(0, min_open=True), default=None,
    help="rate limit: API tokens per minute, as the judge reports them (the LLM judge does)",
)  # fmt: skip
@click.option(
    "--share-rate-limit", is_flag=True, default=False,
    help="one rate limit for every instance of this --id, kept in Redis (RATIFIER_REDIS_URL)",
)  # fmt: skip
@setting_option(
    "signing_key",
    "--signing-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="private key file: sign every verdict (ratifier keys new; docs/signing.md)",
)
@click.pass_context
def run(
    ctx: click.Context,
    target: str,
    validator_id: str,
    params: tuple[str, ...],
    version: str | None,
    timeout: float,
    concurrency: int,
    max_in_flight: int | None,
    delay: float,
    skip_decided: bool,
    requests_per_min: float | None,
    tokens_per_min: float | None,
    share_rate_limit: bool,
    signing_key: Path | None,
) -> int:
    """Judge candidates as consumer group <prefix>.validator.<ID>.

    MODULE:CALLABLE is an async function Candidate -> Judgement (or a factory of one, with
    --param). See docs/validators.md.
    """
    from ratifier.io.rate_limits import Budget
    from ratifier.validators.runtime import ValidatorWorker

    limited = requests_per_min is not None or tokens_per_min is not None
    if share_rate_limit and not limited:
        raise click.UsageError("--share-rate-limit needs --requests-per-min or --tokens-per-min")

    judge = load_target(target, parse_params(params))
    settings = settings_from(ctx, signing_key=signing_key)
    return run_worker(
        lambda: ValidatorWorker(
            settings,
            validator_id,
            judge,
            version=version,
            timeout_s=timeout,
            concurrency=concurrency,
            max_in_flight=max_in_flight,
            delay_s=delay,
            skip_decided=skip_decided,
            rate_limit=Budget(requests_per_min, tokens_per_min) if limited else None,
            share_rate_limit=share_rate_limit,
        ),
        settings,
    )


commands = (validator,)
