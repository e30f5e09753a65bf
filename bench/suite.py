"""Runs the selected benchmarks for the chosen tally engines, prints the table, writes JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import engines, harness, latency, memory, throughput, validators
from bench.table import table

BENCHMARKS = ("throughput", "latency", "memory", "scaling", "validators")


@dataclass(frozen=True, slots=True)
class SaturationSearch:
    start_rate: float  # cases/s
    factor: float  # each step offers this much more
    step_s: float
    max_steps: int


@dataclass(frozen=True, slots=True)
class Plan:
    cases: int  # throughput and scaling
    search: SaturationSearch  # the live saturation rate the latency fractions are taken of
    rate_fractions: tuple[float, ...]
    latency_duration_s: float
    open_windows: int
    prune_cases: int  # per wave
    prune_waves: int
    timeout_s: float


# Quick: only the half-saturation rate (issue 9's latency target) keeps `make test` under a minute.
QUICK = Plan(300, SaturationSearch(100, 2.0, 1.5, 2), (0.5,), 3.0, 2_000, 150, 2, 120.0)
FULL = Plan(
    10_000,
    SaturationSearch(60, 1.2, 5.0, 16),
    (0.1, 0.25, 0.5, 0.9),
    30.0,  # s per measured rate: one ~150 ms stall of the shared machine stays under 1 %
    100_000,
    250_000,  # 4 waves of 250 000: the 1M decided-and-pruned figure, ~20 min per engine
    4,
    1800.0,
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, about a minute")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument(
        "--engine",
        choices=engines.CHOICES,
        help="tally engine(s) to measure (default: both; with --quick, RATIFIER_TALLY_ENGINE's)",
    )
    parser.add_argument("--cases", type=int, help="cases for throughput and scaling")
    parser.add_argument(
        "--signatures",
        action="store_true",
        help="throughput also with signed verdicts, signatures required (docs/signing.md)",
    )
    parser.add_argument("--open-windows", type=int, help="open windows for the memory figure")
    parser.add_argument(
        "--prune-cases",
        type=int,
        help="cases per wave decided and pruned (default 250000: 4 waves make the 1M figure)",
    )
    parser.add_argument("--prune-waves", type=int, help="waves of decided and pruned cases")
    parser.add_argument("--rate", type=float, action="append", help="offered rate, cases/s")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    return parser.parse_args(argv)


def tally_engines(option: str | None, quick: bool) -> tuple[str, ...]:
    """The engines to measure: ``--engine``, else both (quick: the configured one, for time)."""
    if option is None:
        option = harness.base_settings().tally_engine if quick else engines.BOTH
    return engines.chosen(option)


async def main(argv: list[str]) -> int:
    args = parse(argv)
    plan = QUICK if args.quick else FULL
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    cases = args.cases or plan.cases
    chosen = tally_engines(args.engine, args.quick)
    results: dict[str, Any] = {
        "meta": {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "engines": list(chosen),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    }
    began = time.monotonic()
    if "throughput" in only:
        results["throughput"] = await throughput.throughput(
            cases, chosen, plan.timeout_s, signatures=args.signatures
        )
        _show("throughput", began)
    if "latency" in only:
        results["latency"] = {"engines": {}}
        for engine in chosen:
            results["latency"]["engines"][engine] = await _latency(engine, plan, args.rate)
        _show("latency", began)
    if "memory" in only:
        results["memory"] = {"engines": {}}
        for engine in chosen:
            results["memory"]["engines"][engine] = {
                "open": await memory.open_windows(
                    engine, args.open_windows or plan.open_windows, plan.timeout_s
                ),
                "pruned": await memory.pruned(
                    engine,
                    args.prune_cases or plan.prune_cases,
                    args.prune_waves or plan.prune_waves,
                    plan.timeout_s,
                ),
            }
        _show("memory", began)
    if "scaling" in only:
        one = {
            engine: figures["tally"]
            for engine, figures in results.get("throughput", {}).get("engines", {}).items()
        }
        results["scaling"] = await throughput.scaling(cases, chosen, one, plan.timeout_s)
        _show("scaling", began)
    if "validators" in only:  # the validator runtime (no tally): docs/benchmarks.md
        results["validators"] = await validators.run(args.quick)
        _show("validators", began)
    out = args.out or harness.BENCH_DIR / "results" / (
        dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + ".json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if set(results) - {"meta", "validators"}:  # the tally's figures
        print(table(results))
    if "validators" in results:
        print(validators.table(results["validators"]))
    print(f"\nfigures written to {out}")
    return 0


async def _latency(engine: str, plan: Plan, rates: list[float] | None) -> dict[str, Any]:
    """Fixed ``rates``, or the plan's fractions of this engine's own live saturation rate."""
    search: dict[str, Any] = {}
    if not rates:
        found = await latency.saturation(
            engine,
            plan.search.start_rate,
            plan.search.factor,
            plan.search.step_s,
            plan.search.max_steps,
            plan.timeout_s,
        )
        search = found.as_dict()
        rates = [round(f * found.cases_per_s, 1) for f in plan.rate_fractions]
    figures = await latency.latency(engine, rates, plan.latency_duration_s, plan.timeout_s)
    return {**figures, "saturation": search}


def _show(name: str, began: float) -> None:
    print(f"[bench] {name} done ({time.monotonic() - began:.0f} s in)", flush=True)
