"""A worker's readiness file: what scripts and tests poll."""

from __future__ import annotations

import os
from pathlib import Path

from ratifier.config import Settings
from ratifier.readiness import ReadinessFile, read_status


def test_the_file_says_what_the_worker_owns_and_goes_when_it_stops(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, worker_id="w1")
    readiness = ReadinessFile(settings, "transactional", "p.tally")
    assert read_status(settings, "w1") is None
    readiness.update(ready=False, partitions={2, 0}, recovering={0, 2})
    status = read_status(settings, "w1")
    assert status is not None
    assert (status.ready, status.partitions, status.recovering) == (False, (0, 2), (0, 2))
    assert (status.engine, status.group, status.pid) == ("transactional", "p.tally", os.getpid())
    readiness.update(ready=True)
    status = read_status(settings, "w1")
    assert status is not None
    assert (status.ready, status.partitions, status.recovering) == (True, (0, 2), ())
    readiness.remove()
    assert read_status(settings, "w1") is None
