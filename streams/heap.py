"""Hand freed heap back to the operating system after the tally prunes many cases.

A decided case is pruned after its retention time, but the memory its state used stays with the
process: each table entry is a ~0.6-1 KB bytes object from glibc's malloc, which keeps freed
chunks for reuse instead of returning them. ``malloc_trim(0)`` returns every whole free page (not
just the heap's top) to the kernel. It takes milliseconds, so it runs after a burst of prunes, not
per case. On a libc without it (musl, macOS) this does nothing. (CPython's own small-object
arenas are not affected: an arena goes back only when empty; see docs/benchmarks.md.)
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Trim once this many cases were deleted since the last trim (~10 MB of entries) ...
TRIM_EVERY_DELETES = 10_000
# ... or when a burst of at least this many deletions has ended (a tick deleted nothing more).
TRIM_AFTER_BURST = 1_000


def glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


class HeapTrimmer:
    """Decides when to call ``malloc_trim``, from the running count of deleted cases."""

    def __init__(
        self,
        trim: Callable[[int], int] | None,
        every_deletes: int = TRIM_EVERY_DELETES,
        after_burst: int = TRIM_AFTER_BURST,
    ) -> None:
        self._trim = trim
        self.every_deletes = every_deletes
        self.after_burst = after_burst
        self._at_last_trim = 0
        self._at_last_call = 0
        self.trims = 0

    def maybe_trim(self, deleted_total: int) -> bool:
        """Call after each tick with the processor's running count of deleted cases."""
        pending = deleted_total - self._at_last_trim
        burst_over = deleted_total == self._at_last_call
        self._at_last_call = deleted_total
        if pending < self.every_deletes and not (burst_over and pending >= self.after_burst):
            return False
        self._at_last_trim = deleted_total
        if self._trim is None:
            return False
        self._trim(0)
        self.trims += 1
        logger.debug("heap trimmed after %d deletions in total", deleted_total)
        return True
