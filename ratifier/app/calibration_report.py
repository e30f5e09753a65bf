"""``ratifier calibrate``'s work: replay labelled history for every M and mode, simulate M-of-N
false passes, and render a table, a JSON document and a PNG plot (docs/calibration.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratifier.app.calibration_choice import Recommendation, Targets, intervals, recommend
from ratifier.app.calibration_replay import ReplayResult, replay_all
from ratifier.core.calibration import (
    LabelledSet,
    SimulationResult,
    accuracy,
    dawid_skene,
    majority_vote,
    simulate,
)
from ratifier.core.uncertainty import (
    PairCorrelation,
    error_correlations,
    false_accept_rate,
    fitted_rho,
    strongest,
    wilson_interval,
)

__all__ = ["DatasetReport", "calibrate_dataset", "format_report", "plot_report", "simulate_grid"]


@dataclass(frozen=True, slots=True)
class DatasetReport:
    name: str
    cases: int
    validators: int
    majority_accuracy: float  # batch references, ties to the negative label
    dawid_skene_accuracy: float
    rows: tuple[ReplayResult, ...]
    targets: Targets
    recommendations: tuple[Recommendation, ...]
    # How alike validators err: every pair's phi, their weighted mean (the simulation's rho),
    # and (bad candidates accepted, labels on bad candidates): the simulation's p.
    correlations: tuple[PairCorrelation, ...]
    rho: float
    false_accepts: tuple[int, int]

    @property
    def p(self) -> float:
        wrong, total = self.false_accepts
        return wrong / total if total else 0.0

    def as_json(self) -> dict[str, Any]:
        level = self.targets.confidence
        return {
            "name": self.name,
            "cases": self.cases,
            "validators": self.validators,
            "references": {
                "majority_vote": self.majority_accuracy,
                "dawid_skene": self.dawid_skene_accuracy,
            },
            "confidence": level,
            "rows": [{**row.as_json(), "intervals": intervals(row, level)} for row in self.rows],
            "targets": {
                "max_pass_error": self.targets.max_pass_error,
                "max_escalation": self.targets.max_escalation,
            },
            "recommendations": [r.as_json() for r in self.recommendations],
            "error_correlation": {
                "fitted_rho": self.rho,
                "false_accept_rate": self.p,
                "false_accept_interval": wilson_interval(*self.false_accepts, level),
                "pairs": [
                    {"validators": [c.first, c.second], "shared": c.shared, "phi": c.phi}
                    for c in self.correlations
                ],
            },
        }


def calibrate_dataset(data: LabelledSet, modes: tuple[str, ...], targets: Targets) -> DatasetReport:
    rows = tuple(replay_all(data, modes))
    correlations = tuple(error_correlations(data))
    return DatasetReport(
        data.name,
        len(data.items),
        len(data.validators),
        accuracy(majority_vote(data), data),
        accuracy(dawid_skene(data).labels, data),
        rows,
        targets,
        tuple(recommend(rows, targets)),
        correlations,
        fitted_rho(correlations),
        false_accept_rate(data),
    )


def simulate_grid(
    n: int, p: float, rhos: Iterable[float], cases: int, seed: int
) -> list[SimulationResult]:
    return [
        simulate(n, m, p, cases, rho=rho, seed=seed + index)
        for index, rho in enumerate(rhos)
        for m in range(1, n + 1)
    ]


def format_report(
    datasets: Sequence[DatasetReport], simulations: Sequence[SimulationResult]
) -> str:
    lines: list[str] = []
    for report in datasets:
        level = report.targets.confidence
        lines += [
            f"{report.name}: {report.cases} cases, {report.validators} validators; batch "
            f"references: majority vote {report.majority_accuracy:.4f}, "
            f"Dawid-Skene {report.dawid_skene_accuracy:.4f}",
            f"every rate with its {level:.0%} Wilson interval [low-high]",
            "",
            f"{'mode':<9} {'M':>3} {'first-attempt':>19} {'escalated':>19} {'pass error':>21} "
            f"{'accuracy':>22} {'calls/case':>10} {'sequential':>10}",
        ]
        for row in report.rows:
            bounds = intervals(row, level)
            lines.append(
                f"{row.mode:<9} {row.m:>3} "
                f"{_pct(row.first_attempt_consensus, bounds['first_attempt_consensus'], 1):>19} "
                f"{_pct(row.escalation_rate, bounds['escalation_rate'], 1):>19} "
                f"{_pct(row.pass_error_rate, bounds['pass_error_rate'], 2):>21} "
                f"{_fraction(row.accuracy, bounds['accuracy']):>22} "
                f"{row.parallel_calls / row.cases:>10.2f} "
                f"{row.sequential_calls / row.cases:>10.2f}"
            )
        lines += ["", *_correlation_lines(report), ""]
        lines += [
            f"recommended (smallest M with pass error <= {report.targets.max_pass_error:.2%} "
            f"and escalated <= {report.targets.max_escalation:.1%}, {level:.0%} upper bounds):"
        ]
        lines += [f"  {r.mode:<9} {r.explanation}" for r in report.recommendations]
        lines.append("")
    if simulations:
        lines += [
            "simulated bad candidates: false-pass rate of M of N validators that each err with "
            "probability p (rho: share of cases where they all err together), 95% Wilson interval",
            "",
            f"{'N':>3} {'M':>3} {'p':>5} {'rho':>5} {'cases':>8} {'simulated':>10} "
            f"{'interval':>19} {'binomial':>10} {'within 4 se':>11}",
        ]
        for sim in simulations:
            inside = abs(sim.false_pass_rate - sim.closed_form) <= 4 * sim.standard_error
            verdict = ("yes" if inside else "no") if sim.rho == 0 else "-"
            low, high = wilson_interval(sim.false_passes, sim.cases)
            lines.append(
                f"{sim.n:>3} {sim.m:>3} {sim.p:>5.2f} {sim.rho:>5.2f} {sim.cases:>8} "
                f"{sim.false_pass_rate:>10.4%} {f'[{low:.4%}-{high:.4%}]':>19} "
                f"{sim.closed_form:>10.4%} {verdict:>11}"
            )
    return "\n".join(lines).rstrip() + "\n"


def _pct(value: float, bounds: tuple[float, float], digits: int) -> str:
    low, high = bounds
    return f"{value:.{digits}%} [{low * 100:.{digits}f}-{high * 100:.{digits}f}]"


def _fraction(value: float, bounds: tuple[float, float]) -> str:
    return f"{value:.4f} [{bounds[0]:.4f}-{bounds[1]:.4f}]"


def _correlation_lines(report: DatasetReport) -> list[str]:
    defined = [c for c in report.correlations if c.phi == c.phi]  # nan != nan
    low, high = wilson_interval(*report.false_accepts, report.targets.confidence)
    lines = [
        f"validator errors: fitted rho {report.rho:.3f} (phi of every pair's errors, weighted "
        f"by shared items; {len(defined)} pairs with at least 10 shared items)",
        f"bad candidates accepted by a validator (the simulation's p): {report.p:.2%} "
        f"[{low:.2%}-{high:.2%}] of {report.false_accepts[1]} labels",
    ]
    top = strongest(report.correlations, 3)
    if top:
        pairs = ", ".join(f"{c.first}+{c.second} {c.phi:.2f} over {c.shared}" for c in top)
        lines.append(f"most correlated pairs (phi over shared items): {pairs}")
    return lines


def report_json(
    datasets: Sequence[DatasetReport], simulations: Sequence[SimulationResult]
) -> dict[str, Any]:
    return {
        "datasets": [report.as_json() for report in datasets],
        "simulations": [
            {
                "n": sim.n,
                "m": sim.m,
                "p": sim.p,
                "rho": sim.rho,
                "cases": sim.cases,
                "simulated_false_pass_rate": sim.false_pass_rate,
                "binomial_false_pass_rate": sim.closed_form,
                "standard_error": sim.standard_error,
                "simulated_interval": wilson_interval(sim.false_passes, sim.cases),
            }
            for sim in simulations
        ],
    }


def plot_report(
    datasets: Sequence[DatasetReport], simulations: Sequence[SimulationResult], path: Path
) -> None:
    """One panel per dataset (escalation rate and pass error against M, per mode) and one for
    the simulation (false-pass rate against M, simulated and closed form)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = len(datasets) + (1 if simulations else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(6 * max(panels, 1), 4.5), squeeze=False)
    for ax, report in zip(axes[0], datasets, strict=False):
        level = report.targets.confidence
        chosen = {r.mode: r.m for r in report.recommendations}
        for mode in dict.fromkeys(row.mode for row in report.rows):
            rows = [row for row in report.rows if row.mode == mode]
            ms = [row.m for row in rows]
            for rate, marker, style in (
                ("escalation_rate", "o", "-"),
                ("pass_error_rate", "x", "--"),
            ):
                values = [getattr(row, rate) for row in rows]
                bounds = [intervals(row, level)[rate] for row in rows]
                line = ax.errorbar(
                    ms,
                    values,
                    yerr=[  # clipped: at 0 of n the bound and the rate differ by a rounding
                        [max(0.0, v - b[0]) for v, b in zip(values, bounds, strict=True)],
                        [max(0.0, b[1] - v) for v, b in zip(values, bounds, strict=True)],
                    ],
                    marker=marker,
                    linestyle=style,
                    capsize=2,
                    label=f"{mode} {rate.split('_rate')[0].replace('_', ' ')}",
                )
                m = chosen.get(mode)
                if m is not None and m in ms:
                    ax.plot(
                        [m], [values[ms.index(m)]], marker="*", markersize=16, linestyle="",
                        color=line[0].get_color(), markeredgecolor="black",
                    )  # fmt: skip
        for mode, m in chosen.items():
            if m is not None:
                ax.axvline(m, color="grey", linestyle=":", linewidth=1)
                ax.annotate(
                    f"{mode}: M={m}", (m, 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize="small",
                )  # fmt: skip
        ax.axhline(report.targets.max_pass_error, color="red", linewidth=0.8, alpha=0.5)
        ax.axhline(report.targets.max_escalation, color="blue", linewidth=0.8, alpha=0.5)
        ax.set_title(
            f"{report.name}: {report.cases} cases ({level:.0%} Wilson bars; * recommended M)"
        )
        ax.set_xlabel("M (accepts needed)")
        ax.set_ylabel("rate")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    if simulations:
        ax = axes[0][len(datasets)]
        for n, p, rho in dict.fromkeys((sim.n, sim.p, sim.rho) for sim in simulations):
            sims = [sim for sim in simulations if (sim.n, sim.p, sim.rho) == (n, p, rho)]
            ax.semilogy(
                [s.m for s in sims],
                [max(s.false_pass_rate, 1e-7) for s in sims],
                marker="o",
                label=f"simulated, N={n} p={p:.3g} rho={rho:.3g}",
            )
        first = [
            sim for sim in simulations if (sim.n, sim.p) == (simulations[0].n, simulations[0].p)
        ]
        first = [sim for sim in first if sim.rho == first[0].rho]
        ax.semilogy(
            [s.m for s in first], [s.closed_form for s in first], "k--", label="binomial (rho=0)"
        )
        ax.set_title(f"false passes (binomial: N={first[0].n}, p={first[0].p:g})")
        ax.set_xlabel("M (accepts needed)")
        ax.set_ylabel("P(bad candidate passes)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
