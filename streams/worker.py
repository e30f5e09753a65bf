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
    run_worker(app, settings)


def run_worker(app: faust.App, settings: Settings) -> None:
    """Block running ``app`` as a faust worker until SIGINT/SIGTERM."""
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # faust's terminal spinner sets the root logger to DEBUG, so every debug call in faust and
    # aiokafka builds a record: ~25% of the tally's CPU at log level warning (see benchmarks).
    worker.spinner = None
    worker.execute_from_commandline()
