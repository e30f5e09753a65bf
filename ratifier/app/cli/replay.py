"""``ratifier replay``: evaluate a policy on labelled history through the real pipeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson

from ratifier.app.cli.calibrate import modes_option, positive_option
from ratifier.app.cli.options import CONTEXT_SETTINGS, examples, settings_from


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier replay rte.standardized.tsv                 # every mode, M = majority",
        "ratifier replay rte.standardized.tsv --mode online --m 7 --limit 200",
        "ratifier replay history.tsv --json replay.json",
    ),
)
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@positive_option
@modes_option
@click.option(
    "--m", "m", type=click.IntRange(1), default=None,
    help="accepts needed of the N labels per item  [default: a strict majority, N // 2 + 1]",
)  # fmt: skip
@click.option("--limit", type=click.IntRange(1), default=None, help="replay the first items only")
@click.option(
    "--in-flight", type=click.IntRange(1), default=1,
    help="cases open at once; 1 replays in file order, as `ratifier calibrate` does",
)  # fmt: skip
@click.option("--timeout", type=float, default=1800.0, help="seconds to wait, per mode")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="write the figures as JSON",
)  # fmt: skip
@click.pass_context
def replay(
    ctx: click.Context,
    dataset: Path,
    positive: str | None,
    modes: tuple[str, ...],
    m: int | None,
    limit: int | None,
    in_flight: int,
    timeout: float,
    json_path: Path | None,
) -> int:
    """Feed a labelled DATASET through topics, a tally and label-reading validators.

    Per mode: one case per item, the item's workers as validators (one policy per item), a
    real tally process, and a validator stand-in that publishes each worker's label as an
    ACCEPT or REJECT; a rejected positive label is retried with the other one. Prints the
    accuracy, escalations and validator calls next to the batch references (majority vote,
    Dawid-Skene) and the offline replay (docs/calibration.md). Needs the local stack.
    """
    from ratifier.app.calibration_replay import replay as offline_replay
    from ratifier.app.replay import replay_through_pipeline
    from ratifier.core.calibration import (
        accuracy,
        dawid_skene,
        majority_vote,
        read_standardized_tsv,
    )

    try:
        data = read_standardized_tsv(dataset, positive)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="DATASET") from None
    if limit is not None:
        data = data.head(limit)
    n = min(len(item.labels) for item in data.items)
    m = n // 2 + 1 if m is None else m
    if m > n:
        raise click.BadParameter(f"M = {m}, but some items have only {n} labels", param_hint="--m")
    references = {
        "majority_vote": accuracy(majority_vote(data), data),
        "dawid_skene": accuracy(dawid_skene(data).labels, data),
    }
    click.echo(
        f"{data.name}: {len(data.items)} cases, M = {m} of {n}; batch references: majority vote "
        f"{references['majority_vote']:.4f}, Dawid-Skene {references['dawid_skene']:.4f}"
    )
    click.echo(
        f"{'mode':<9} {'accuracy':>8} {'offline':>8} {'escalated':>9} {'pass error':>10} "
        f"{'calls/case':>10} {'at decision':>11} {'seconds':>7}"
    )
    rows = []
    base = settings_from(ctx)
    for mode in dict.fromkeys(modes):
        prefix = f"{base.topic_prefix}-replay-{mode}-{int(time.time())}"
        settings = base.with_overrides(topic_prefix=prefix)
        run = asyncio.run(
            replay_through_pipeline(settings, data, mode, m, in_flight=in_flight, timeout_s=timeout)
        )
        result, offline = run.result, offline_replay(data, mode, m)
        click.echo(
            f"{mode:<9} {result.accuracy:>8.4f} {offline.accuracy:>8.4f} "
            f"{result.escalation_rate:>9.1%} {result.pass_error_rate:>10.2%} "
            f"{result.parallel_calls / result.cases:>10.2f} "
            f"{result.sequential_calls / result.cases:>11.2f} {run.seconds:>7.1f}"
        )
        rows.append({**result.as_json(), "offline": offline.as_json(), "seconds": run.seconds})
    if json_path is not None:
        document = {"dataset": data.name, "m": m, "references": references, "modes": rows}
        json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0


commands = (replay,)
