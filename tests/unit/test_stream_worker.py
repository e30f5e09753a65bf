"""The faust worker the tally (and the benchmarks' faust relay) run in."""

from __future__ import annotations

import gc
from pathlib import Path

from ratifier.config import Settings
from ratifier.streams.app import create_app
from ratifier.streams.worker import FaustWorker


async def test_the_worker_freezes_what_start_up_made_once_it_is_ready(tmp_path: Path) -> None:
    settings = Settings.from_env(None, state_dir=tmp_path)
    worker = FaustWorker(create_app(settings), settings)
    assert worker.spinner is None  # faust's spinner would set the root logger to DEBUG
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        await worker.on_startup_finished()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
