"""``ratifier calibrate``'s work: replay labelled history for every M and mode, simulate M-of-N
false passes, and render a table, a JSON document and a PNG plot (docs/calibration.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratifier.core.calibration import (
    LabelledSet,
    SimulationResult,
    accuracy,
    dawid_skene,
    majority_vote,
    simulate,
)
from ratifier.streams.offline import ReplayResult, replay_all

__all__ = ["DatasetReport", "calibrate_dataset", "format_report", "plot_report", "simulate_grid"]


@dataclass(frozen=True, slots=True)
class DatasetReport:
    name: str
    cases: int
    validators: int
    majority_accuracy: float  # batch references, ties to the negative label
    dawid_skene_accuracy: float
    rows: tuple[ReplayResult, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cases": self.cases,
            "validators": self.validators,
            "references": {
                "majority_vote": self.majority_accuracy,
                "dawid_skene": self.dawid_skene_accuracy,
            },
            "rows": [row.as_json() for row in self.rows],
        }


def calibrate_dataset(data: LabelledSet, modes: tuple[str, ...]) -> DatasetReport:
    return DatasetReport(
        data.name,
        len(data.items),
        len(data.validators),
        accuracy(majority_vote(data), data),
        accuracy(dawid_skene(data).labels, data),
        tuple(replay_all(data, modes)),
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
        lines += [
            f"{report.name}: {report.cases} cases, {report.validators} validators; batch "
            f"references: majority vote {report.majority_accuracy:.4f}, "
            f"Dawid-Skene {report.dawid_skene_accuracy:.4f}",
            "",
            f"{'mode':<9} {'M':>3} {'first-attempt':>13} {'escalated':>9} {'pass error':>10} "
            f"{'accuracy':>8} {'calls/case':>10} {'sequential':>10}",
        ]
        for row in report.rows:
            lines.append(
                f"{row.mode:<9} {row.m:>3} {row.first_attempt_consensus:>13.1%} "
                f"{row.escalation_rate:>9.1%} {row.pass_error_rate:>10.2%} "
                f"{row.accuracy:>8.4f} {row.parallel_calls / row.cases:>10.2f} "
                f"{row.sequential_calls / row.cases:>10.2f}"
            )
        lines.append("")
    if simulations:
        lines += [
            "simulated bad candidates: false-pass rate of M of N validators that each err with "
            "probability p (rho: share of cases where they all err together)",
            "",
            f"{'N':>3} {'M':>3} {'p':>5} {'rho':>5} {'cases':>8} {'simulated':>10} "
            f"{'binomial':>10} {'within 4 se':>11}",
        ]
        for sim in simulations:
            inside = abs(sim.false_pass_rate - sim.closed_form) <= 4 * sim.standard_error
            verdict = ("yes" if inside else "no") if sim.rho == 0 else "-"
            lines.append(
                f"{sim.n:>3} {sim.m:>3} {sim.p:>5.2f} {sim.rho:>5.2f} {sim.cases:>8} "
                f"{sim.false_pass_rate:>10.4%} {sim.closed_form:>10.4%} {verdict:>11}"
            )
    return "\n".join(lines).rstrip() + "\n"


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
        for mode in dict.fromkeys(row.mode for row in report.rows):
            rows = [row for row in report.rows if row.mode == mode]
            ms = [row.m for row in rows]
            ax.plot(
                ms, [row.escalation_rate for row in rows], marker="o", label=f"{mode} escalated"
            )
            ax.plot(
                ms,
                [row.pass_error_rate for row in rows],
                marker="x",
                linestyle="--",
                label=f"{mode} pass error",
            )
        ax.set_title(f"{report.name}: {report.cases} cases")
        ax.set_xlabel("M (accepts needed)")
        ax.set_ylabel("rate")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    if simulations:
        ax = axes[0][len(datasets)]
        for rho in dict.fromkeys(sim.rho for sim in simulations):
            sims = [sim for sim in simulations if sim.rho == rho]
            ax.semilogy(
                [s.m for s in sims],
                [max(s.false_pass_rate, 1e-7) for s in sims],
                marker="o",
                label=f"simulated, rho={rho:g}",
            )
        first = [sim for sim in simulations if sim.rho == simulations[0].rho]
        ax.semilogy(
            [s.m for s in first], [s.closed_form for s in first], "k--", label="binomial (rho=0)"
        )
        ax.set_title(f"false passes, N={first[0].n}, p={first[0].p:g}")
        ax.set_xlabel("M (accepts needed)")
        ax.set_ylabel("P(bad candidate passes)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
