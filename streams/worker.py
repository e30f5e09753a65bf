"""Run the tally as a faust worker process."""

from __future__ import annotations

import faust

from ratifier.config import Settings
from ratifier.policy import Policy
from ratifier.streams.agents import install_tally
from ratifier.streams.app import create_app


def run_tally(settings: Settings, policies: dict[str, Policy]) -> None:
    """Block running the tally until SIGINT/SIGTERM."""
    app = create_app(settings)
    install_tally(app, settings, policies)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
