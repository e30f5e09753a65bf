"""Runs the selected benchmarks in order, prints the table and writes the figures as JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import harness, latency, memory, throughput

BENCHMARKS = ("throughput", "latency", "memory", "scaling")


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


QUICK = Plan(300, SaturationSearch(100, 2.0, 1.5, 2), (0.25, 0.5), 3.0, 2_000, 150, 2, 120.0)
FULL = Plan(
    10_000,
    SaturationSearch(60, 1.2, 5.0, 16),
    (0.1, 0.25, 0.5, 0.9),
    30.0,  # s per measured rate: one ~150 ms stall of the shared machine stays under 1 %
    100_000,
    250_000,  # 4 waves of 250 000: the 1M decided-and-pruned figure, ~20 min
    4,
    1800.0,
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, well under 2 min")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--cases", type=int, help="cases for throughput and scaling")
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


async def main(argv: list[str]) -> int:
    args = parse(argv)
    plan = QUICK if args.quick else FULL
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    cases = args.cases or plan.cases
    results: dict[str, Any] = {
        "meta": {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    }
    if "throughput" in only:
        results["throughput"] = await throughput.throughput(cases, plan.timeout_s)
        _show("throughput", results)
    if "latency" in only:
        search: dict[str, Any] = {}
        rates = args.rate
        if not rates:
            found = await latency.saturation(
                plan.search.start_rate,
                plan.search.factor,
                plan.search.step_s,
                plan.search.max_steps,
                plan.timeout_s,
            )
            search = found.as_dict()
            rates = [round(f * found.cases_per_s, 1) for f in plan.rate_fractions]
        results["latency"] = await latency.latency(rates, plan.latency_duration_s, plan.timeout_s)
        results["latency"]["saturation"] = search
        _show("latency", results)
    if "memory" in only:
        results["memory"] = {
            "open": await memory.open_windows(
                args.open_windows or plan.open_windows, plan.timeout_s
            ),
            "pruned": await memory.pruned(
                args.prune_cases or plan.prune_cases,
                args.prune_waves or plan.prune_waves,
                plan.timeout_s,
            ),
        }
        _show("memory", results)
    if "scaling" in only:
        one = results.get("throughput", {}).get("tally")
        results["scaling"] = await throughput.scaling(cases, one, plan.timeout_s)
        _show("scaling", results)
    out = args.out or harness.BENCH_DIR / "results" / (
        dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + ".json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(table(results))
    print(f"\nfigures written to {out}")
    return 0


def _show(name: str, results: dict[str, Any]) -> None:
    print(f"[bench] {name} done", flush=True)


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = [("benchmark", "ratifier", "raw baseline", "ratio")]
    if "throughput" in results:
        t = results["throughput"]
        rows.append(
            (
                f"throughput, {t['cases']} cases (verdicts/s)",
                f"{t['tally']['verdicts_per_s']:.0f}",
                f"{t['baseline']['verdicts_per_s']:.0f}",
                f"{t['ratio']:.2f}",
            )
        )
        rows.append(
            (
                "  startup: spawn -> group assigned (s)",
                f"{t['tally']['startup_s']:.1f}",
                f"{t['baseline']['startup_s']:.1f}",
                "",
            )
        )
        rows.append(
            (
                "  faust relay: faust's ceiling (verdicts/s)",
                f"{t['faust_relay']['verdicts_per_s']:.0f}",
                f"{t['baseline']['verdicts_per_s']:.0f}",
                f"{t['faust_relay_ratio']:.2f}",
            )
        )
        rows.append(
            (
                "  tally / faust relay",
                "",
                "",
                f"{t['tally_vs_faust_relay']:.2f}",
            )
        )
    if "latency" in results:
        search = results["latency"]["saturation"]
        if search:
            found = f"{search['saturation_cases_per_s']:.0f}"
            rows.append(
                (f"latency: live saturation (cases/s), {search['limited_by']}", found, "", "")
            )
        for r in results["latency"]["rates"]:
            # The offered rate is only what the load generator managed to keep: when it fell
            # behind (it shares 2 cores with broker and tally), say so next to the figures.
            achieved = f"{r['tally']['achieved_rate']:.0f}/{r['baseline']['achieved_rate']:.0f}"
            rows.append((f"latency @ {r['rate']:.0f} cases/s offered", "", "", ""))
            rows.append((f"  achieved (tally/baseline) {achieved}", "", "", ""))
            for q in ("p50", "p99", "p999"):
                tal, base = r["tally"][f"{q}_ms"], r["baseline"][f"{q}_ms"]
                rows.append(
                    (
                        f"  {q} (ms)",
                        f"{tal:.1f}",
                        f"{base:.1f}",
                        f"{tal / base:.2f}",
                    )
                )
    if "memory" in results:
        o, p = results["memory"]["open"], results["memory"]["pruned"]
        rows += [
            ("memory: RSS idle (MB)", f"{o['rss_idle_mb']:.1f}", "", ""),
            (
                f"memory: RSS, {o['open_windows']} open windows (MB)",
                f"{o['rss_open_mb']:.1f}",
                "",
                "",
            ),
            ("memory: bytes per open window", f"{o['bytes_per_window']:.0f}", "", ""),
            (f"memory: {p['cases']} decided+pruned, idle (MB)", f"{p['rss_idle_mb']:.1f}", "", ""),
            ("  peak (MB)", f"{p['rss_peak_mb']:.1f}", "", ""),
            (
                "  after each wave (MB)",
                " ".join(f"{mb:.0f}" for mb in p["rss_after_each_wave_mb"]),
                "",
                "",
            ),
            ("  table entries left (changelog)", f"{p['table_entries_after']}", "", ""),
            (
                "  after last wave - idle (MB); after / idle",
                f"{p['after_minus_idle_mb']:.1f}",
                "",
                f"{p['rss_after_prune_mb'] / p['rss_idle_mb']:.2f}",
            ),
            ("  last wave - first wave (MB)", f"{p['growth_after_first_wave_mb']:.1f}", "", ""),
        ]
    if "scaling" in results:
        s = results["scaling"]
        rows.append(
            (
                f"scaling, {s['cases']} cases, 4 partitions (verdicts/s)",
                f"2 workers {s['workers_2']['verdicts_per_s']:.0f}",
                f"1 worker {s['workers_1']['verdicts_per_s']:.0f}",
                f"{s['ratio']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
