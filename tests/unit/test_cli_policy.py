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


def test_policy_check_prints_every_rule_the_supermajority_included(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "debate.toml"
    path.write_text(
        'name = "debate"\nversion = "1"\nmax_attempts = 3\ncomplete_packets = false\n'
        "[threshold]\naccepts = 3\n[supermajority]\nratio = 0.75\nmin_rounds = 3\n"
        '[veto]\naction = "escalate"\n[retry_guard]\nmax_similarity = 0.95\n'
        + "".join(f'[[validators]]\nid = "{v}"\n' for v in "abcde")
        + '[[validators]]\nid = "rt"\nrole = "red-team"\n'
    )
    assert main(["policy", "check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [
        "  voters: a, b, c, d, e",
        "  threshold: at least 3 of 5 voters accept",
        "  supermajority: before attempt 3, a pass also needs accepting weight share >= 0.75",
        "  debate: none (one round per attempt)",
        "  red team: rt; a pass waits for it; a CRITICAL rejection escalates at once",
        "  attempts: 3, window 30 s each; earlier attempts carried in full",
        "  complete packets: off (a certain failure is decided at once)",
        "  retry guard: escalate a retry at least 0.95 similar",
        "  confidence: prior 0.5; reliability fixed: a 0.8, b 0.8, c 0.8, d 0.8, e 0.8",
        "  signatures: off",
    ]


def test_policy_check_prints_the_debate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "debate.toml"
    path.write_text(
        'name = "debate"\nversion = "1"\nmax_attempts = 1\n[threshold]\naccepts = 3\n'
        "[debate]\nmin_rounds = 2\nmax_rounds = 4\nsupermajority = 0.75\n"
        + "".join(f'[[validators]]\nid = "{v}"\n' for v in "abcde")
    )
    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "debate 2..4 rounds" in out.splitlines()[0]
    assert (
        "  debate: rounds 2..4 per attempt, each seeing the last round's verdicts (anonymised); "
        "from round 2 a voter weight share >= 0.75 accepting passes (threshold too), rejecting "
        "fails; none by round 4: NO_SUPERMAJORITY"
    ) in out.splitlines()
