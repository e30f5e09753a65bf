"""``ratifier replay``: a labelled subset through topics, a real tally process, the label crowd
and the generator; the figures equal the offline replay through the same rules."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from ratifier.app.calibration_replay import replay
from ratifier.app.cli import main
from ratifier.app.replay import replay_through_pipeline
from ratifier.core.calibration import LabelledSet, read_standardized_tsv
from ratifier.core.config import Settings

SNOW_RTE = Path("/work/shared/datasets/snow2008/rte.standardized.tsv")


def history(tmp_path: Path, items: int = 40) -> Path:
    """The first items of Snow RTE when the shared datasets are here, else a synthetic crowd."""
    if SNOW_RTE.is_file():
        return SNOW_RTE
    rng = random.Random(5)
    rows = ["!amt_annotation_ids\t!amt_worker_ids\torig_id\tresponse\tgold"]
    for item in range(items):
        gold = rng.choice("01")
        for worker in rng.sample(range(30), 10):
            label = gold if rng.random() < (0.9 if worker < 20 else 0.55) else "10"[int(gold)]
            rows.append(f"a\tw{worker}\t{item}\t{label}\t{gold}")
    path = tmp_path / "crowd.standardized.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def subset(tmp_path: Path, items: int = 40) -> LabelledSet:
    return read_standardized_tsv(history(tmp_path, items)).head(items)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["majority", "weighted", "online"])
async def test_replay_through_the_pipeline_matches_the_offline_rules(
    settings: Settings, tmp_path: Path, mode: str
) -> None:
    data = subset(tmp_path)
    tuned = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}-{mode}")
    run = await replay_through_pipeline(tuned, data, mode, 6, in_flight=1, timeout_s=300)
    offline = replay(data, mode, 6)
    got = run.result
    assert got.cases == len(data.items)
    assert got.passes + got.escalations == got.cases  # every case one final outcome
    if mode == "online":
        # The tally reads candidates and verdicts from two topics, so an attempt's late
        # verdicts can settle it after the next candidate: the learning order, and with it an
        # occasional decision, may differ from the offline replay's.
        assert abs(got.correct - offline.correct) <= 2
    else:
        assert got == offline


@pytest.mark.timeout(600)
def test_replay_command_prints_accuracy_next_to_the_references(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    path = history(tmp_path)
    code = main(["--prefix", prefix, "replay", str(path), "--mode", "majority", "--limit", "20"])
    assert code == 0
    out = capsys.readouterr().out
    assert "20 cases, M = 6 of 10; batch references: majority vote" in out
    row = next(line for line in out.splitlines() if line.startswith("majority "))
    accuracy, offline = row.split()[1:3]
    assert accuracy == offline
