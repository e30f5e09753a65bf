"""``bench/run.py debate`` still runs, on few cases, and counts what it says it counts.

The figures themselves are in docs/debate.md; this keeps the simulation's code from rotting.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ratifier.core.calibration import LabelledItem

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    # Loaded from its file: bench/ is not an installed package (see bench/run.py).
    spec = importlib.util.spec_from_file_location("bench_debate", ROOT / "bench" / "debate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_debate_simulation_counts_rounds_calls_and_decisions() -> None:
    bench = _bench()
    one_round = bench.run("one round", False, 0.0, 200, 0.25, 1)
    assert (one_round.cases, one_round.rounds, one_round.calls) == (200, 200, 1000)
    assert one_round.undecided == 0
    for herding in (0.0, 0.9):
        debate = bench.run("debate", True, herding, 200, 0.25, 1)
        assert debate.cases == 200
        assert 2 * 200 <= debate.rounds <= 4 * 200  # min_rounds 2, max_rounds 4
        assert debate.calls == 5 * debate.rounds
        assert debate.right + debate.undecided <= 200
    # Judges that always copy the majority they were shown never change it: two rounds each.
    herd = bench.run("herd", True, 1.0, 200, 0.25, 1)
    assert herd.rounds == 2 * 200


def test_the_history_variant_votes_the_items_own_labels() -> None:
    bench = _bench()
    # Items every annotator got right (or wrong): their votes can only be those labels.
    right = LabelledItem("r", "1", tuple((f"w{n}", "1") for n in range(10)))
    wrong = LabelledItem("w", "0", tuple((f"w{n}", "1") for n in range(10)))
    figures = bench.run_history("history", True, 0.0, [right, wrong] * 5)
    assert figures.cases == 10
    assert figures.rounds == 2 * 10  # unanimous rounds: decided at min_rounds
    assert figures.right == 5
    assert figures.wrong_pass == 5
