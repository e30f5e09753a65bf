"""An earlier commit's package, importable beside this one, to measure both in the same bench run.

``bench/run.py codec --baseline REV`` (and ``processor --baseline REV``) export commit REV with
``git archive`` into a temporary folder, lay it out as the installed package is laid out
(``ratifier/`` with ``streams/``, ``schemas/`` and ``validators/`` mapped into it, as the strict
editable install does), and run the same measurement in child processes alternately on REV and
on the working tree: rounds interleaved, so a busy moment of the shared machine hits both sides.
The child is this checkout's ``bench/run.py``; with ``PYTHONPATH`` pointing at the export, its
``ratifier`` is REV's. Only what both sides have can be measured, so the measurements import
nothing from ``bench/`` that needs newer code.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = ROOT / "bench" / "run.py"
# The source folders the install maps into the package (pyproject's package-dir).
MAPPED = ("streams", "schemas", "validators")


@contextmanager
def exported(rev: str) -> Iterator[Path]:
    """A folder whose ``ratifier`` package is commit ``rev``'s, for ``PYTHONPATH``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="ratifier-baseline-"))
    try:
        source = folder / "src"
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(source, filter="data")
        package = folder / "pkg" / "ratifier"
        shutil.copytree(source / "ratifier", package)
        for name in MAPPED:
            shutil.rmtree(package / name, ignore_errors=True)
            shutil.copytree(source / name, package / name)
        yield folder / "pkg"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_child(args: Sequence[str], pythonpath: Path | None) -> dict[str, float]:
    """``bench/run.py ARGS`` in a child process; its stdout is a JSON object of figures."""
    figures: dict[str, float] = orjson.loads(_run(RUN_PY, args, pythonpath))
    return figures


def _run(run_py: Path, args: Sequence[str], pythonpath: Path | None) -> str:
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, str(run_py), *args],
        capture_output=True,
        check=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # no source folder ratifier/ on the path
    )
    return done.stdout


# ``bench/run.py processor`` has printed this line since it exists: a baseline runs its own.
_PER_RECORD = re.compile(r"([0-9.]+) µs per record")


def processor_interleaved(
    args: Sequence[str], baseline: Path, rounds: int
) -> tuple[list[float], list[float]]:
    """(working tree, baseline) µs per record of ``rounds`` alternate ``processor`` runs, each
    side with its own bench/run.py (its harness matches its package)."""
    sides = [(RUN_PY, None), (baseline.parent / "src" / "bench" / "run.py", baseline)]
    figures: list[list[float]] = [[], []]
    for number in range(rounds):
        order = [0, 1] if number % 2 == 0 else [1, 0]
        for side in order:
            run_py, path = sides[side]
            found = _PER_RECORD.search(_run(run_py, ["processor", *args], path))
            if found is None:
                raise RuntimeError(f"{run_py} processor printed no µs per record")
            figures[side].append(float(found.group(1)))
    return figures[0], figures[1]


def repeated(args: Sequence[str], rounds: int) -> dict[str, list[float]]:
    """The working tree's figures of ``rounds`` runs, one list per figure."""
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, value in run_child(args, None).items():
            figures.setdefault(name, []).append(value)
    return figures


def interleaved(
    args: Sequence[str], baseline: Path, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(working tree, baseline) figures of ``rounds`` alternate runs, one list per figure."""
    new: dict[str, list[float]] = {}
    old: dict[str, list[float]] = {}
    for number in range(rounds):
        # Alternate which side goes first, so neither always gets the warmer or quieter turn.
        order = [(new, None), (old, baseline)]
        for figures, path in order if number % 2 == 0 else reversed(order):
            for name, value in run_child(args, path).items():
                figures.setdefault(name, []).append(value)
    return new, old


def table(
    new: dict[str, list[float]], old: dict[str, list[float]], rev: str, unit: str
) -> list[str]:
    """One line per figure: medians (spread), and baseline / working tree (>1: faster now)."""
    lines = [f"{'':34} {'working tree':>22} {rev[:12]:>22} {'speed-up':>9}"]
    for name, values in new.items():
        now = _cell(values, unit)
        before = old.get(name)
        if before:
            ratio = statistics.median(before) / statistics.median(values)
            lines.append(f"{name:34} {now:>22} {_cell(before, unit):>22} {ratio:>8.2f}x")
        else:
            lines.append(f"{name:34} {now:>22} {'(not in it)':>22} {'':>9}")
    return lines


def _cell(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) {unit}"
