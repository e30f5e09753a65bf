"""A worker's own folder under a shared state folder: the first ``slot-N`` it can lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from ratifier.core.errors import ConfigError

MAX_SLOTS = 64


def claim_slot(state_dir: Path) -> tuple[Path, IO[bytes]]:
    """The first free ``slot-N`` under ``state_dir`` and its open lock file (close to release).

    The lock is an flock on ``slot-N/.lock``: the kernel releases it when the process ends,
    however it ends, so a crashed worker's slot is free for its restart.
    """
    for n in range(MAX_SLOTS):
        folder = state_dir / f"slot-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "ab")  # noqa: SIM115 - held open while the worker lives
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n".encode())
        lock.flush()
        return folder, lock
    raise ConfigError(
        f"all {MAX_SLOTS} state slots under {state_dir} are locked by running tally workers: "
        "stop one, or give this one a state folder of its own (RATIFIER_STATE_DIR)"
    )
