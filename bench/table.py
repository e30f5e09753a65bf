"""The benchmark table printed at the end of ``bench/run.py``: one row per figure, per engine.

Columns: what is measured, Ratifier's figure, the same-run baseline's figure, their ratio. A
tally row names its engine; if the engine that ran (told by transaction markers, see
bench/engines.py) is not the one asked for, the row says so, since its figures are then the
other engine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = tuple[str, str, str, str]
HEADER: Row = ("benchmark", "ratifier", "baseline", "ratio")


def table(results: Mapping[str, Any]) -> str:
    rows: list[Row] = [HEADER]
    if "throughput" in results:
        rows += _throughput(results["throughput"])
    if "latency" in results:
        for engine, figures in results["latency"]["engines"].items():
            rows += _latency(engine, figures)
    if "memory" in results:
        engines = results["memory"]["engines"]
        for engine, figures in engines.items():
            rows += _memory(engine, figures["open"], figures["pruned"])
        rows += _memory_between(engines)
    if "scaling" in results:
        s = results["scaling"]
        for engine, figures in s["engines"].items():
            rows.append(
                (
                    f"scaling [{engine}], {s['cases']} cases, {s['partitions']} partitions"
                    " (verdicts/s)",
                    f"2 workers {figures['workers_2']['verdicts_per_s']:.0f}",
                    f"1 worker {figures['workers_1']['verdicts_per_s']:.0f}",
                    f"{figures['ratio']:.2f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def tally_label(engine: str, ran: str) -> str:
    return f"tally [{engine}]" if ran == engine else f"tally [{engine} asked, {ran} ran]"


def _throughput(t: Mapping[str, Any]) -> list[Row]:
    raw = t["raw_relay"]["verdicts_per_s"]
    raw_txn = t["raw_transactional_relay"]["verdicts_per_s"]
    rows: list[Row] = [
        (f"throughput, {t['cases']} cases (verdicts/s)", "", "", ""),
        ("  raw relay, at-least-once: the baseline", "", f"{raw:.0f}", ""),
        (
            "  raw transactional relay vs raw relay",
            f"{raw_txn:.0f}",
            f"{raw:.0f}",
            f"{t['raw_transactional_relay_ratio']:.2f}",
        ),
    ]
    if "faust_relay" in t:
        rows.append(
            (
                "  faust relay (faust's ceiling) vs raw relay",
                f"{t['faust_relay']['verdicts_per_s']:.0f}",
                f"{raw:.0f}",
                f"{t['faust_relay_ratio']:.2f}",
            )
        )
    for engine, figures in t["engines"].items():
        label = tally_label(engine, figures["engine_ran"])
        rate = f"{figures['tally']['verdicts_per_s']:.0f}"
        vs_raw = f"{figures['vs_raw_relay']:.2f}"
        rows.append((f"  {label} vs raw relay", rate, f"{raw:.0f}", vs_raw))
        rows.append(
            (
                f"  {label} vs raw transactional relay",
                rate,
                f"{raw_txn:.0f}",
                f"{figures['vs_raw_transactional_relay']:.2f}",
            )
        )
        if "vs_faust_relay" in figures:
            faust = f"{t['faust_relay']['verdicts_per_s']:.0f}"
            rows.append(
                (f"  {label} vs faust relay", rate, faust, f"{figures['vs_faust_relay']:.2f}")
            )
    if "signed" in t:
        signed, engine = t["signed"], t["signed"]["engine"]
        unsigned = t["engines"][engine]["tally"]["verdicts_per_s"]
        rows.append(
            (
                f"  {tally_label(engine, signed['engine_ran'])} signed (required) vs unsigned",
                f"{signed['tally']['verdicts_per_s']:.0f}",
                f"{unsigned:.0f}",
                f"{signed['vs_unsigned']:.2f}",
            )
        )
        cost = signed["verification"]
        rows.append(
            (
                "  signature check per verdict, offline (µs): tally / validator signs",
                f"{cost['check_us']:.1f}",
                f"{cost['sign_us']:.1f}",
                "",
            )
        )
    startups = [
        ("raw relay", t["raw_relay"]),
        ("raw transactional relay", t["raw_transactional_relay"]),
    ]
    if "faust_relay" in t:
        startups.append(("faust relay", t["faust_relay"]))
    startups += [(f"tally [{e}]", f["tally"]) for e, f in t["engines"].items()]
    for name, run in startups:
        startup = f"{run['startup_s']:.1f}"
        rows.append((f"  startup, spawn -> assigned (s): {name}", startup, "", ""))
    return rows


def _latency(engine: str, figures: Mapping[str, Any]) -> list[Row]:
    label = tally_label(engine, figures["engine_ran"])
    rows: list[Row] = []
    search = figures["saturation"]
    if search:
        rows.append(
            (
                f"latency, {label}: live saturation (cases/s), limited by {search['limited_by']}",
                f"{search['saturation_cases_per_s']:.0f}",
                "",
                "",
            )
        )
    for r in figures["rates"]:
        # The offered rate is only what the load generator managed to keep: when it fell
        # behind (it shares 2 cores with broker and tally), say so next to the figures.
        achieved = f"{r['tally']['achieved_rate']:.0f}/{r['baseline']['achieved_rate']:.0f}"
        rows.append((f"latency, {label} vs raw three hops @ {r['rate']:.0f} cases/s", "", "", ""))
        rows.append((f"  achieved (tally/baseline) {achieved}", "", "", ""))
        for q in ("p50", "p99", "p999"):
            tal, base = r["tally"][f"{q}_ms"], r["baseline"][f"{q}_ms"]
            rows.append((f"  {q} (ms)", f"{tal:.1f}", f"{base:.1f}", f"{tal / base:.2f}"))
    return rows


def _memory(engine: str, o: Mapping[str, Any], p: Mapping[str, Any]) -> list[Row]:
    label = tally_label(engine, p["engine_ran"])
    if o["engine_ran"] != p["engine_ran"]:
        label += f" (open windows: {o['engine_ran']} ran)"
    return [
        (f"memory, {label}: RSS idle (MB)", f"{o['rss_idle_mb']:.1f}", "", ""),
        (f"  RSS, {o['open_windows']} open windows (MB)", f"{o['rss_open_mb']:.1f}", "", ""),
        ("  bytes per open window", f"{o['bytes_per_window']:.0f}", "", ""),
        (f"  {p['cases']} decided+pruned, idle (MB)", f"{p['rss_idle_mb']:.1f}", "", ""),
        ("  peak (MB)", f"{p['rss_peak_mb']:.1f}", "", ""),
        (
            "  after each wave (MB)",
            " ".join(f"{mb:.0f}" for mb in p["rss_after_each_wave_mb"]),
            "",
            "",
        ),
        ("  table entries left (changelog)", f"{p['table_entries_after']}", "", ""),
        ("  finished-case markers kept", f"{p.get('finished_markers_after', 0)}", "", ""),
        (
            "  after last wave - idle (MB); after / idle",
            f"{p['after_minus_idle_mb']:.1f}",
            "",
            f"{p['rss_after_prune_mb'] / p['rss_idle_mb']:.2f}",
        ),
        ("  last wave - first wave (MB)", f"{p['growth_after_first_wave_mb']:.1f}", "", ""),
    ]


def _memory_between(engines: Mapping[str, Any]) -> list[Row]:
    """The transactional engine against the faust one (today's engine), when both ran."""
    if not {"transactional", "faust"} <= set(engines):
        return []
    txn, faust = engines["transactional"], engines["faust"]
    per_window = (txn["open"]["bytes_per_window"], faust["open"]["bytes_per_window"])
    after = (txn["pruned"]["rss_after_prune_mb"], faust["pruned"]["rss_after_prune_mb"])
    return [
        (
            "memory, transactional vs faust: bytes per open window",
            f"{per_window[0]:.0f}",
            f"{per_window[1]:.0f}",
            f"{per_window[0] / per_window[1]:.2f}",
        ),
        (
            "  RSS after pruning (MB)",
            f"{after[0]:.1f}",
            f"{after[1]:.1f}",
            f"{after[0] / after[1]:.2f}",
        ),
    ]
