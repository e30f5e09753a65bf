"""The policy a chaos run's tally loads: the built-in ``default``, or ``governed``, the same
with the options that keep more in the tally's state (held packets, learned reliabilities), so
faults are tried against that state too, or ``debate``, the default with debate rounds (open
rounds and closed rounds' verdicts in the state, round requests in the tally's transactions)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ratifier.core.config import Settings

POLICIES = ("default", "governed", "debate")


def default_policy_text() -> str:
    return resources.files("ratifier.core.policies").joinpath("default.toml").read_text()


def governed(text: str) -> str:
    """``text`` with ``complete_packets = true`` and ``[reliability] learn = "online"``."""
    lines = _with_top_level(text, "complete_packets = true").splitlines()
    return "\n".join([*lines, "", "[reliability]", 'learn = "online"']) + "\n"


def debating(text: str) -> str:
    """``text`` with a ``[debate]`` table (2 to 3 rounds, a 0.75 supermajority, docs/debate.md)
    and earlier attempts referenced: three attempts of three rounds in full would not fit a
    record."""
    lines = _with_top_level(text, 'earlier_attempts = "referenced"').splitlines()
    lines += ["", "[debate]", "min_rounds = 2", "max_rounds = 3", "supermajority = 0.75"]
    return "\n".join(lines) + "\n"


def _with_top_level(text: str, line: str) -> str:
    """``text`` with ``line`` added among the top-level keys (before the first table)."""
    lines: list[str] = []
    placed = False
    for existing in text.splitlines():
        if not placed and existing.startswith("["):
            lines += [line, ""]
            placed = True
        lines.append(existing)
    return "\n".join(lines) + "\n"


def install_policy(settings: Settings, folder: Path, text: str) -> Settings:
    """Write ``text`` as ``default.toml`` into ``folder``; ``settings`` loading from there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "default.toml").write_text(text)
    return settings.with_overrides(policy_dir=folder)
