"""Small things a new user trips over: user modules in the working folder, key folders, the log
noise of libraries."""

from __future__ import annotations

import logging
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratifier.app.cli import LIBRARY_LOGGERS, main
from ratifier.app.cli.loading import load_target


def test_a_module_in_the_working_folder_loads_without_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ratifier_cwd_judge.py").write_text(
        "async def judge(candidate):\n    return None\n"
    )
    monkeypatch.chdir(tmp_path)
    # As the console script runs: neither "" nor the working folder on the path.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "ratifier_cwd_judge", raising=False)
    target = load_target("ratifier_cwd_judge:judge")
    assert target.__module__ == "ratifier_cwd_judge"
    assert sys.path[-1] == str(tmp_path)  # after the installed packages, which keep precedence


def test_keys_new_creates_its_folder_for_the_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "etc" / "keys"
    assert main(["keys", "new", "sim-a", "--dir", str(folder)]) == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "sim-a.key").stat().st_mode) == 0o600
    assert "public key:" in capsys.readouterr().out


@pytest.fixture
def library_levels() -> Iterator[None]:
    yield
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.usefixtures("library_levels")
@pytest.mark.parametrize(
    ("level", "expected"),
    [("info", logging.WARNING), ("error", logging.WARNING), ("debug", logging.NOTSET)],
)
def test_library_loggers_stay_at_warning_unless_debug(
    level: str, expected: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "new", "k", "--dir", str(tmp_path)]) == 0
    for name in ("aiokafka", "kafka", "faust"):
        logging.getLogger(name).setLevel(logging.INFO)
    assert main(["--log-level", level, "keys", "public", str(tmp_path / "k.key")]) == 0
    for name in ("aiokafka", "kafka", "faust"):  # NOTSET: the root's level (debug) applies
        assert logging.getLogger(name).level == expected, name
