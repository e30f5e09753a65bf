"""``ratifier generator run MODULE:CALLABLE``: answers retry requests with new attempts."""

from __future__ import annotations

import click

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.loading import load_target, parse_params
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from


@click.group(context_settings=CONTEXT_SETTINGS)
def generator() -> None:
    """Generator: retry requests in, attempts out."""


@generator.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier generator run ratifier.app.demo.generator:improve"),
)
@click.argument("target", metavar="MODULE:CALLABLE")
@click.option("--id", "generator_id", default="default", help="generator id: the consumer group")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="call MODULE:CALLABLE as a factory with these keyword arguments (JSON values; repeatable)",
)
@click.pass_context
def run(ctx: click.Context, target: str, generator_id: str, params: tuple[str, ...]) -> int:
    """Consume retry requests and produce next attempts.

    MODULE:CALLABLE is an async function RetryRequest -> str | Revision (or a factory of one).
    """
    from ratifier.app.configs import endpoints
    from ratifier.io.consume import PoisonHandling
    from ratifier.runtimes.generator import GeneratorWorker

    improve = load_target(target, parse_params(params))
    settings = settings_from(ctx)
    where, poison = endpoints(settings), PoisonHandling.from_settings(settings)
    return run_worker(
        lambda: GeneratorWorker(where, poison, improve, generator_id=generator_id), settings
    )


commands = (generator,)
