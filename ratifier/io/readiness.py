"""A worker's readiness, as a small JSON file that scripts and tests poll instead of reading logs.

Each long-running worker writes ``<state_dir>/workers/<worker id>.json``: its engine, pid, the
input partitions it owns, and ``ready`` (partitions assigned and their state restored). The file
is replaced atomically on every change, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from ratifier.core.config import Settings
from ratifier.core.models import now_ms


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker_id: str
    engine: str
    pid: int
    group: str
    ready: bool = False
    partitions: tuple[int, ...] = ()  # input partitions owned, state restored or not
    recovering: tuple[int, ...] = ()  # owned partitions whose state is being (re)built
    updated_ms: int = field(default_factory=now_ms)


def status_dir(settings: Settings) -> Path:
    return settings.state_dir / "workers"


def status_path(settings: Settings, worker_id: str) -> Path:
    return status_dir(settings) / f"{worker_id}.json"


class ReadinessFile:
    """Writes one worker's :class:`WorkerStatus`; removed when the worker stops cleanly."""

    def __init__(self, settings: Settings, engine: str, group: str) -> None:
        self.path = status_path(settings, settings.worker_id)
        self._status = WorkerStatus(settings.worker_id, engine, os.getpid(), group)

    @property
    def status(self) -> WorkerStatus:
        """What was written last (the metrics endpoint's /readyz reads it)."""
        return self._status

    def update(
        self,
        *,
        ready: bool,
        partitions: Iterable[int] | None = None,
        recovering: Iterable[int] = (),
    ) -> None:
        current = self._status
        self._status = WorkerStatus(
            current.worker_id,
            current.engine,
            current.pid,
            current.group,
            ready=ready,
            partitions=current.partitions if partitions is None else tuple(sorted(partitions)),
            recovering=tuple(sorted(recovering)),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(asdict(self._status)))
        temporary.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def all_statuses(settings: Settings) -> list[WorkerStatus]:
    """Every worker status under the state dir, by worker id (those of dead processes too)."""
    ids = sorted(path.stem for path in status_dir(settings).glob("*.json"))
    return [status for worker_id in ids if (status := read_status(settings, worker_id))]


def is_alive(status: WorkerStatus) -> bool:
    """Whether the process that wrote ``status`` still runs (on this machine)."""
    try:
        os.kill(status.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(settings: Settings, worker_id: str) -> WorkerStatus | None:
    """The status a worker last wrote, or None if it wrote none (or stopped cleanly)."""
    try:
        raw = orjson.loads(status_path(settings, worker_id).read_bytes())
    except FileNotFoundError:
        return None
    raw["partitions"] = tuple(raw["partitions"])
    raw["recovering"] = tuple(raw["recovering"])
    return WorkerStatus(**raw)
