"""``ratifier calibrate`` recommends: Wilson intervals (against statsmodels), validator error
correlation (synthetic data of known rho), the smallest M meeting the targets (rows of known
answer), and the whole command on the shared Snow et al. 2008 RTE file (skipped without it)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

from ratifier.app.calibration_choice import Targets, recommend
from ratifier.app.calibration_replay import ReplayResult
from ratifier.app.cli import main
from ratifier.core.calibration import LabelledItem, LabelledSet
from ratifier.core.uncertainty import (
    error_correlations,
    false_accept_rate,
    fitted_rho,
    wilson_interval,
)

# ../shared relative to the repository root: the lead's checkout and every worktree beside it.
SNOW = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "snow2008"
RTE = SNOW / "rte.standardized.tsv"
needs_snow = pytest.mark.skipif(
    not RTE.is_file(), reason=f"the Snow 2008 RTE file is not at {RTE} (shared datasets absent)"
)


@pytest.mark.parametrize(
    ("successes", "trials"), [(0, 60), (3, 60), (30, 60), (60, 60), (1, 1), (17, 4000)]
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_is_statsmodels(successes: int, trials: int, confidence: float) -> None:
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    ours = wilson_interval(successes, trials, confidence)
    assert ours == pytest.approx((low, high), abs=1e-12)


def test_wilson_interval_of_a_small_history_is_wide_and_never_a_point() -> None:
    # 3 wrong passes of 60 (5 %) could be 1.7 % or 13.7 %; 0 of 60 is still up to 6 %.
    low, high = wilson_interval(3, 60)
    assert (round(low, 3), round(high, 3)) == (0.017, 0.137)
    assert wilson_interval(0, 60)[1] == pytest.approx(0.0602, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(5, 4)


def correlated_history(rho: float, p: float, items: int, seed: int) -> LabelledSet:
    """The simulator's own model: per item, with probability rho all ten validators follow one
    draw (all wrong or all right), else each is wrong with probability p on its own."""
    rng = random.Random(seed)
    workers = [f"w{i}" for i in range(10)]
    out = []
    for index in range(items):
        gold = rng.choice("01")
        if rng.random() < rho:
            shared = rng.random() < p
            wrong = [shared] * len(workers)
        else:
            wrong = [rng.random() < p for _ in workers]
        labels = tuple(
            (w, "10"[int(gold)] if bad else gold) for w, bad in zip(workers, wrong, strict=True)
        )
        out.append(LabelledItem(f"i{index}", gold, labels))
    return LabelledSet("synthetic", tuple(out), "1", "0")


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6])
def test_fitted_rho_recovers_the_correlation_the_history_was_made_with(rho: float) -> None:
    data = correlated_history(rho, p=0.2, items=3000, seed=11)
    pairs = error_correlations(data)
    assert len(pairs) == 45
    assert all(pair.shared == 3000 for pair in pairs)
    # 45 pairs over 3000 items: the weighted mean's sampling error is about 0.01.
    assert fitted_rho(pairs) == pytest.approx(rho, abs=0.04)
    wrong, total = false_accept_rate(data)
    assert wrong / total == pytest.approx(0.2, abs=0.02)


def test_phi_is_undefined_for_a_validator_that_never_errs() -> None:
    items = tuple(
        LabelledItem(f"i{k}", "1", (("a", "1"), ("b", "0" if k % 3 else "1"))) for k in range(12)
    )
    [pair] = error_correlations(LabelledSet("x", items, "1", "0"))
    assert math.isnan(pair.phi)
    assert fitted_rho([pair]) == 0.0


def row(
    mode: str, m: int, *, passes: int, wrong: int, escalations: int, cases: int = 400
) -> ReplayResult:
    return ReplayResult(mode, m, cases, passes, passes, escalations, wrong, cases - wrong, 0, 0)


def test_the_smallest_m_whose_upper_bounds_meet_both_targets_is_recommended() -> None:
    rows = [
        row("majority", 1, passes=400, wrong=80, escalations=0),  # 20 % wrong: too many
        row("majority", 2, passes=390, wrong=12, escalations=10),  # 3.1 %, but upper 5.3 %
        row("majority", 3, passes=380, wrong=5, escalations=20),  # 1.3 % (upper 3.0 %), 5 %
        row("majority", 4, passes=300, wrong=1, escalations=100),  # 25 % escalated: too many
    ]
    [choice] = recommend(rows, Targets(max_pass_error=0.05, max_escalation=0.10))
    assert choice.m == 3
    assert choice.explanation.startswith("M = 3: pass error 1.32% (at most 3.04%)")
    # A looser error target takes M = 2, whose point estimate alone would have met 5 %.
    [looser] = recommend(rows, Targets(max_pass_error=0.06, max_escalation=0.10))
    assert looser.m == 2


def test_no_recommendation_names_the_closest_m_when_the_history_is_too_small() -> None:
    # 3 wrong of 60 passes is 5 % on the nose, but up to 13.7 %: nothing is recommended.
    rows = [row("online", 2, passes=60, wrong=3, escalations=0, cases=60)]
    [choice] = recommend(rows, Targets(max_pass_error=0.05, max_escalation=0.10))
    assert choice.m is None
    assert "closest M = 2: pass error at most 13.70%" in choice.explanation


def test_calibrate_recommends_on_synthetic_history_and_marks_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "toy.standardized.tsv"
    data = correlated_history(0.0, p=0.1, items=600, seed=5)
    lines = ["id\tworker\titem\tresponse\tgold"]
    lines += [
        f"a\t{w}\t{i.item_id}\t{label}\t{i.gold}" for i in data.items for w, label in i.labels
    ]
    history.write_text("\n".join(lines) + "\n")
    out_json, out_png = tmp_path / "cal.json", tmp_path / "cal.png"
    args = ["calibrate", str(history), "--mode", "majority", "--cases", "2000", "--rho", "0"]
    args += ["--target-error", "0.02"]
    assert main([*args, "--json", str(out_json), "--plot", str(out_png)]) == 0
    out = capsys.readouterr().out
    # Ten validators right 90 % of the time each, independently (attempt 1 proposes "1", attempt
    # 2 "0"): by the binomial, M = 3 errs on 3.5 % of passes, M = 4 on 0.64 %, and nothing
    # escalates below M = 6. Over 600 items M = 3's whole interval lies above a 2 % target and
    # M = 4's below it: M = 4 is the known answer.
    document = json.loads(out_json.read_text())
    [dataset] = document["datasets"]
    [recommendation] = dataset["recommendations"]
    assert recommendation["m"] == 4, out
    assert "majority  M = 4: pass error" in out
    assert dataset["error_correlation"]["fitted_rho"] == pytest.approx(0.0, abs=0.03)
    assert dataset["error_correlation"]["false_accept_rate"] == pytest.approx(0.1, abs=0.02)
    for replayed in dataset["rows"]:
        for rate, (low, high) in replayed["intervals"].items():
            assert low <= replayed[rate] <= high, (replayed["m"], rate)
    # The fitted simulation at the history's own N, p and rho is in the table.
    assert any(s["n"] == 10 and s["rho"] == dataset["error_correlation"]["fitted_rho"]
               for s in document["simulations"])  # fmt: skip
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_snow
def test_calibrate_recommends_on_snow_rte(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["calibrate", str(RTE), "--mode", "majority", "--cases", "0"]
    assert main([*args, "--target-error", "0.10", "--max-escalation", "0.12"]) == 0
    out = capsys.readouterr().out
    # M = 6: 6.80 % wrong passes (at most 8.86 %), 8.1 % escalated (at most 10.2 %); M = 5
    # errs 12.5 %, so 6 is the smallest meeting both.
    assert "majority    6   50.9% [47.4-54.3]     8.1% [6.4-10.2]     6.80% [5.20-8.86]" in out
    assert (
        "majority  M = 6: pass error 6.80% (at most 8.86%), escalated 8.1% (at most 10.2%)" in out
    )
    assert "validator errors: fitted rho 0.083" in out
    # The defaults (5 %, 10 %) are out of reach of 800 items under majority: no M, closest 6.
    assert main(["calibrate", str(RTE), "--mode", "majority", "--cases", "0"]) == 0
    assert "no M meets pass error <= 5.00%" in capsys.readouterr().out
