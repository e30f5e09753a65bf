"""``ratifier calibrate``: choose M from labelled history and from the binomial model."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples

MODES = ("majority", "weighted", "online")

# Shared with ``ratifier replay``, which replays the same files through the pipeline.
positive_option = click.option(
    "--positive", default=None, help="the label attempt 1 proposes  [default: the larger label]"
)
modes_option = click.option(
    "--mode", "modes", multiple=True, type=click.Choice(MODES), default=MODES,
    help="weighting modes to replay (repeat the option)",
)  # fmt: skip


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier calibrate --n 5 --p 0.12                     # the binomial model alone",
        "ratifier calibrate rte.standardized.tsv --plot m.png --json m.json",
        "ratifier calibrate history.tsv --mode majority --rho 0 --rho 0.2",
    ),
)
@click.argument("datasets", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@positive_option
@modes_option
@click.option("--n", "n", type=click.IntRange(1, 50), default=5, help="simulated validators")
@click.option(
    "--p", "p", type=click.FloatRange(0, 1), default=0.12,
    help="simulated chance that a validator accepts a bad candidate",
)  # fmt: skip
@click.option(
    "--rho", "rhos", multiple=True, type=click.FloatRange(0, 1), default=(0.0, 0.3),
    help="error correlation of the simulated validators (repeat the option); 0: independent",
)  # fmt: skip
@click.option(
    "--cases", type=click.IntRange(0), default=100_000, help="simulated cases per (M, rho); 0: none"
)
@click.option("--seed", type=int, default=0, help="random seed of the simulation")
@click.option(
    "--target-error", type=click.FloatRange(0, 1), default=0.05, show_default=True,
    help="recommend M only if the pass error's upper bound is at most this",
)  # fmt: skip
@click.option(
    "--max-escalation", type=click.FloatRange(0, 1), default=0.10, show_default=True,
    help="recommend M only if the escalation rate's upper bound is at most this",
)  # fmt: skip
@click.option(
    "--confidence", type=click.FloatRange(0.5, 1, max_open=True), default=0.95,
    show_default=True, help="level of the Wilson intervals (and of the upper bounds)",
)  # fmt: skip
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="write a PNG plot of the rates against M",
)  # fmt: skip
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="write every figure as JSON",
)  # fmt: skip
def calibrate(
    datasets: tuple[Path, ...],
    positive: str | None,
    modes: tuple[str, ...],
    n: int,
    p: float,
    rhos: tuple[float, ...],
    cases: int,
    seed: int,
    target_error: float,
    max_escalation: float,
    confidence: float,
    plot: Path | None,
    json_path: Path | None,
) -> int:
    """Choose M: replay labelled DATASETS through the tally's rules for every M and mode.

    DATASETS are standardized TSV files (annotation id, worker id, item id, response, gold;
    docs/calibration.md). Per M: first-attempt consensus, escalation rate, error rate of
    passes, accuracy, validator calls per case (parallel and sequential), every rate with its
    Wilson interval; per mode, the smallest M whose pass error and escalation rate stay within
    --target-error and --max-escalation (upper bounds). It estimates how alike validators err
    (pairwise, and a fitted rho). Also simulates N validators that err with probability p,
    independent and correlated (and, per dataset, at its own N, p and fitted rho), next to the
    binomial closed form. Nothing needs the stack.
    """
    from ratifier.app.calibration_choice import Targets
    from ratifier.app.calibration_report import (
        calibrate_dataset,
        format_report,
        plot_report,
        report_json,
        simulate_grid,
    )
    from ratifier.core.calibration import read_standardized_tsv

    targets = Targets(target_error, max_escalation, confidence)
    reports = []
    for path in datasets:
        try:
            data = read_standardized_tsv(path, positive)
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.BadParameter(str(exc), param_hint="DATASETS") from None
        reports.append(calibrate_dataset(data, tuple(dict.fromkeys(modes)), targets))
    simulations = simulate_grid(n, p, rhos, cases, seed) if cases else []
    for report in reports if cases else ():
        # The history's own N, p and fitted rho: what its validators would let through.
        panel = max(row.m for row in report.rows)  # the replay's M run 1..N
        simulations += simulate_grid(panel, report.p, (report.rho,), cases, seed)
    click.echo(format_report(reports, simulations), nl=False)
    if json_path is not None:
        document = report_json(reports, simulations)
        json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    if plot is not None:
        plot_report(reports, simulations, plot)
    return 0


commands = (calibrate,)
