"""``ratifier monitor run``, ``ratifier case CASE_ID``, ``ratifier scoreboard``: governance."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from ratifier.app.cli._runner import run_worker
from ratifier.app.cli.options import (
    CONTEXT_SETTINGS,
    console,
    examples,
    policies_option,
    settings_from,
)
from ratifier.core.config import Settings
from ratifier.core.policy import load_policies


@click.group(context_settings=CONTEXT_SETTINGS)
def monitor() -> None:
    """The governance monitor: figures, alarms, Redis read models (docs/monitoring.md)."""


@monitor.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier monitor run",
        "RATIFIER_METRICS_PORT=9100 ratifier monitor run   # /metrics, /healthz, /readyz",
        "ratifier monitor run --window-s 600 --window-cases 2000",
    ),
)
@policies_option("folder of policy *.toml files (their [monitor] limits)")
@click.option("--window-s", default=3600.0, help="time window of the figures, in seconds")
@click.option("--window-cases", default=10_000, help="at most this many recent items per window")
@click.pass_context
def run(ctx: click.Context, policy_dir: Path | None, window_s: float, window_cases: int) -> int:
    """Follow candidates, verdicts and decisions; publish alarms; keep the read models.

    Start more to share the partitions (one consumer group). Needs Redis (RATIFIER_REDIS_URL):
    while it is down the monitor waits, and says so in its log.
    """
    from ratifier.app.configs import monitor_config
    from ratifier.features.monitor.runtime.worker import MonitorWorker

    settings = settings_from(ctx, policy_dir=policy_dir)
    policies = load_policies(settings.policy_dir)
    config = monitor_config(settings)
    return run_worker(
        lambda: MonitorWorker(config, policies, window_s=window_s, window_cases=window_cases),
        settings,
    )


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier case CASE_ID", "ratifier case CASE_ID | jq .status"),
)
@click.argument("case_id")
@click.pass_context
def case(ctx: click.Context, case_id: str) -> int:
    """Print what happened to a case as JSON: status, attempts, verdicts, decisions.

    Read from the monitor's read models (Redis). Exit code 1 for a case it has not seen.
    """
    from ratifier.io.readmodels import ReadModels

    settings = settings_from(ctx)

    async def main() -> Any:
        async with ReadModels.from_settings(settings) as models:
            return await models.case(case_id)

    view = asyncio.run(main())
    if view is None:
        click.echo(f"ratifier: the monitor has no record of case {case_id}", err=True)
        return 1
    sys.stdout.write(orjson.dumps(view.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


@click.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier scoreboard", "ratifier scoreboard --json | jq .figures"),
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_context
def scoreboard(ctx: click.Context, as_json: bool) -> int:
    """Show the validator scoreboard, each policy's figures and the current alarms."""
    settings = settings_from(ctx)
    board = asyncio.run(read_board(settings))
    if as_json:
        sys.stdout.write(orjson.dumps(board, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_board(board)
    return 0


async def read_board(settings: Settings) -> dict[str, Any]:
    """The scoreboard, figures and alarms as plain data (also used by the demo)."""
    from ratifier.io.readmodels import ReadModels

    async with ReadModels.from_settings(settings) as models:
        rows = await models.scoreboard()
        figures = await models.figures()
        alarms = await models.alarms()
    return {
        "validators": [
            {
                "policy": r.policy,
                "validator": r.validator,
                "category": r.category,
                "accept": r.accept,
                "reject": r.reject,
                "abstain": r.abstain,
                "timeouts": r.timeouts,
                "errors": r.errors,
                "rejection_ratio": _finite(r.rejection_ratio),
                "mean_latency_ms": _finite(r.mean_latency_ms),
            }
            for r in rows
        ],
        "figures": figures,
        "alarms": list(alarms.values()),
    }


def print_board(board: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    table = Table(
        "policy", "validator", "category", "accept", "reject", "abstain", "timeouts", "errors",
        "reject %", "mean ms", title="validator scoreboard (all time)", box=None,
    )  # fmt: skip
    for r in board["validators"]:
        table.add_row(
            r["policy"], r["validator"], r["category"], str(r["accept"]), str(r["reject"]),
            str(r["abstain"]), str(r["timeouts"]), str(r["errors"]),
            _percent(r["rejection_ratio"]), _number(r["mean_latency_ms"], "{:.0f}"),
        )  # fmt: skip
    out.print(table)
    for policy, f in sorted(board["figures"].items()):
        figures = Table("figure", "value", title=f"policy {policy} (window)", box=None)
        latency = f["latency_ms"]
        for name, shown in (
            ("final outcomes", str(f["final_outcomes"])),
            ("first-attempt consensus", _percent(f["first_attempt_consensus_ratio"])),
            ("mean attempts", _number(f["mean_attempts"], "{:.2f}")),
            ("escalation rate", _percent(f["escalation_ratio"])),
            ("retry rate", _percent(f["retry_ratio"])),
            ("verdicts per outcome", _number(f["verdicts_per_outcome"], "{:.2f}")),
            ("escalations, last hour", str(f["escalations_last_hour"])),
            (
                "validator call p50/p95/p99 ms",
                "/".join(_number(latency[q], "{:.1f}") for q in ("p50", "p95", "p99")),
            ),
            *(
                (
                    f"time to decision p50/p95/p99 ms ({outcome})",
                    "/".join(_number(quantiles[q], "{:.0f}") for q in ("p50", "p95", "p99")),
                )
                for outcome, quantiles in f.get("time_to_decision_ms", {}).items()
            ),
            ("Fleiss' kappa", _number(f["fleiss_kappa"], "{:.2f}")),
        ):
            figures.add_row(name, shown)
        for pair, k in f["pair_kappas"].items():
            figures.add_row(f"kappa {pair} (failed)", f"{_number(k['kappa'], '{:.2f}')} "
                            f"over {k['attempts']}")  # fmt: skip
        out.print(figures)
    if board["alarms"]:
        alarms = Table("alarm", "policy", "subject", "message", title="alarms", box=None)
        for a in board["alarms"]:
            alarms.add_row(a["kind"], a["policy"], a["subject"], a["message"])
        out.print(alarms)
    else:
        out.print("no alarms")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


commands = (monitor, case, scoreboard)
