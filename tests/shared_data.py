"""Data shared beside the checkout: ``../shared`` from the repository root (CI lays a copy of
shared/ there, and every worktree of the project sits beside it), never an absolute path.

A test that needs a file marks itself with :func:`needs_shared`; where the file is missing it is
skipped with a reason naming the path, which ``-rs`` (pytest's addopts) lists in the run's summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED = REPOSITORY.parent / "shared"
SNOW = SHARED / "datasets" / "snow2008"


def needs_shared(*paths: Path) -> pytest.MarkDecorator:
    """Skip unless every path exists; the reason names the first missing one."""
    missing = [path for path in paths if not path.exists()]
    reason = f"shared data missing: {missing[0]} (../shared beside the checkout)" if missing else ""
    return pytest.mark.skipif(bool(missing), reason=reason)
