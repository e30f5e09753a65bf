"""``ratifier policy check`` and ``ratifier --version``: what a newcomer types first."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from ratifier.app.cli import main


def test_policy_check_accepts_the_built_in_policy(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(str(resources.files("ratifier.core.policies").joinpath("default.toml")))
    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok, policy 'default'" in out
    assert "3 of 4 accepts, red team redteam" in out


def test_policy_check_names_the_missing_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nversion = "1"\n')
    assert main(["policy", "check", str(path)]) == 2
    assert capsys.readouterr().err == f"ratifier: error: {path}: [threshold] is required " + (
        "(accepts = M or ratio = r)\n"
    )


def test_policy_check_refuses_a_policy_whose_cases_outgrow_a_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.toml"
    lines = ['name = "big"', 'version = "1"', "max_attempts = 9", "[threshold]", "accepts = 1"]
    path.write_text("\n".join([*lines, "[[validators]]", 'id = "a"']) + "\n")
    assert main(["policy", "check", str(path)]) == 2
    assert "RATIFIER_MAX_RECORD_BYTES" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ratifier ")
