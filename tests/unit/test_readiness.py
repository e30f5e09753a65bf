"""A worker's readiness file: what scripts and tests poll."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import orjson

from ratifier.core.config import Settings
from ratifier.io.readiness import (
    ReadinessFile,
    WorkerStatus,
    all_statuses,
    is_alive,
    read_status,
    status_path,
)


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


def test_statuses_of_dead_processes_are_told_apart(tmp_path: Path) -> None:
    alive = Settings(state_dir=tmp_path, worker_id="alive")
    ReadinessFile(alive, "faust", "g").update(ready=True, partitions={1})
    dead = WorkerStatus("dead", "transactional", pid=2**22 + 12345, group="g", ready=True)
    status_path(alive, "dead").write_bytes(orjson.dumps(dataclasses.asdict(dead)))
    statuses = {s.worker_id: s for s in all_statuses(alive)}
    assert set(statuses) == {"alive", "dead"}
    assert is_alive(statuses["alive"])
    assert not is_alive(statuses["dead"])  # killed with -9: its file stays behind
