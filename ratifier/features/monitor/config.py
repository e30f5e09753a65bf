"""What the monitor needs to know, built once from ``Settings`` by the app
(``ratifier.app.configs.monitor_config``)."""

from __future__ import annotations

from dataclasses import dataclass

from ratifier.core.endpoints import Endpoints
from ratifier.io.consume import PoisonHandling


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    endpoints: Endpoints
    # The brake on undecodable input (RATIFIER_POISON_MAX_*); the monitor always skips such
    # records (the tally dead-letters them), whatever the mode.
    poison: PoisonHandling
