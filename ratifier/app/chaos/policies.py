"""The policy a chaos run's tally loads: the built-in ``default``, or ``governed``, the same
with the options that keep more in the tally's state (held packets, learned reliabilities), so
faults are tried against that state too."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ratifier.core.config import Settings

POLICIES = ("default", "governed")


def default_policy_text() -> str:
    return resources.files("ratifier.core.policies").joinpath("default.toml").read_text()


def governed(text: str) -> str:
    """``text`` with ``complete_packets = true`` and ``[reliability] learn = "online"``."""
    lines: list[str] = []
    placed = False
    for line in text.splitlines():
        if not placed and line.startswith("["):  # top-level keys go before the first table
            lines += ["complete_packets = true", ""]
            placed = True
        lines.append(line)
    return "\n".join([*lines, "", "[reliability]", 'learn = "online"']) + "\n"


def install_policy(settings: Settings, folder: Path, text: str) -> Settings:
    """Write ``text`` as ``default.toml`` into ``folder``; ``settings`` loading from there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "default.toml").write_text(text)
    return settings.with_overrides(policy_dir=folder)
