"""The policy's [monitor] table: optional, defaults, checked like every other field."""

from __future__ import annotations

from typing import Any

import pytest

from ratifier.core.errors import PolicyError
from ratifier.core.policy import MonitorSettings, Policy


def _policy(monitor: dict[str, Any] | None = None) -> Policy:
    data: dict[str, Any] = {
        "name": "p",
        "version": "1",
        "threshold": {"accepts": 1},
        "validators": [{"id": "a"}],
    }
    if monitor is not None:
        data["monitor"] = monitor
    return Policy.from_mapping(data, "p.toml")


def test_a_policy_without_the_table_gets_the_defaults() -> None:
    assert _policy().monitor == MonitorSettings()
    assert MonitorSettings().inflation_max_rejection_rate == 0.05
    assert MonitorSettings().review_capacity_per_hour == 0  # no capacity alarm unless set


def test_the_table_sets_the_limits() -> None:
    monitor = _policy({"inflation_min_verdicts": 30, "review_capacity_per_hour": 12}).monitor
    assert (monitor.inflation_min_verdicts, monitor.review_capacity_per_hour) == (30, 12)
    assert monitor.correlation_max_kappa == 0.8


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"inflation_max": 0.1}, r"p.toml: unknown key\(s\) monitor.inflation_max"),
        ({"inflation_max_rejection_rate": 1.5}, r"monitor.inflation_max_rejection_rate must be in"),
        ({"drift_window": 0}, r"monitor.drift_window must be >= 1, got 0"),
        ({"drift_max_z": -1}, r"monitor.drift_max_z must be > 0"),
        ({"review_capacity_per_hour": -1}, r"monitor.review_capacity_per_hour must be >= 0"),
        ({"correlation_min_attempts": 2.5}, r"monitor.correlation_min_attempts must be an integer"),
    ],
)
def test_bad_values_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _policy(table)
