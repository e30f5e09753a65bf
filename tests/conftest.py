"""Generic test wiring only; the broker fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration/ needs the real stack: mark it, so `-m "not integration"`
    # selects the unit tests even where a module forgot its pytestmark.
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish() -> None:
    # Finalise the run's garbage (aiokafka futures, clients) now, before the terminal summary
    # imports plugins' modules: CPython 3.11.7 raises "AST constructor recursion depth mismatch"
    # when a collection runs finalisers in the middle of parsing a module (cpython gh-106905).
    gc.collect()
