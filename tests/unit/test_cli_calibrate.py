"""``ratifier calibrate``: table, JSON and PNG from a labelled file and the simulation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ratifier.app.cli import main
from tests.shared_data import SNOW, needs_shared

SNOW_RTE = SNOW / "rte.standardized.tsv"


def write_history(path: Path, items: int = 40, seed: int = 3) -> Path:
    rng = random.Random(seed)
    rows = ["!amt_annotation_ids\t!amt_worker_ids\torig_id\tresponse\tgold"]
    for item in range(items):
        gold = rng.choice("01")
        for worker in range(5):
            label = gold if rng.random() < 0.8 else "10"[int(gold)]
            rows.append(f"a\tw{worker}\t{item}\t{label}\t{gold}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_calibrate_prints_the_table_and_writes_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = write_history(tmp_path / "toy.standardized.tsv")
    out_json, out_png = tmp_path / "cal.json", tmp_path / "cal.png"
    args = ["calibrate", str(history), "--cases", "20000", "--rho", "0", "--rho", "0.3"]
    assert main([*args, "--json", str(out_json), "--plot", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "toy: 40 cases, 5 validators" in out
    modes = [line.split()[0] for line in out.splitlines() if line[:1].isalpha()]
    assert modes.count("majority") == modes.count("weighted") == modes.count("online") == 5
    # The binomial closed form of the reference figures, and the simulation next to it.
    assert "  5   3  0.12  0.00    20000" in out
    assert "1.4319%" in out
    assert "0.0937%" in out
    document = json.loads(out_json.read_text())
    rows = document["datasets"][0]["rows"]
    assert {(r["mode"], r["m"]) for r in rows} == {
        (mode, m) for mode in ("majority", "weighted", "online") for m in range(1, 6)
    }
    independent = [s for s in document["simulations"] if s["rho"] == 0]
    for sim in independent:
        gap = abs(sim["simulated_false_pass_rate"] - sim["binomial_false_pass_rate"])
        assert gap <= 4 * sim["standard_error"] + 1e-12, sim
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibrate_without_data_simulates_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--n", "3", "--p", "0.2", "--rho", "0", "--cases", "1000"]) == 0
    out = capsys.readouterr().out
    assert "validators; batch references" not in out
    assert out.count("  3 ") >= 3


def test_a_bad_dataset_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("just one column\n")
    assert main(["calibrate", str(bad), "--cases", "0"]) == 2
    assert "standardized TSV" in capsys.readouterr().err


@needs_shared(SNOW_RTE)
def test_calibrate_on_snow_rte(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", str(SNOW_RTE), "--mode", "majority", "--cases", "0"]) == 0
    out = capsys.readouterr().out
    assert "majority vote 0.9187, Dawid-Skene 0.9275" in out
    assert "majority    6         50.9%      8.1%" in out
