"""Records a handler cannot use: one exception, one setting, and a brake.

A handler raises :class:`InvalidRecord` for a record it cannot use (undecodable, the wrong type).
The runtime then applies the one poison setting, ``RATIFIER_POISON``:

- ``dead-letter`` (default): the record goes to ``<prefix>.deadletter`` with the reason, and is
  committed past;
- ``skip``: it is logged, counted and committed past.

Workers that read a topic another worker already dead-letters (validators read candidates the
tally dead-letters) always skip, so one bad record does not become N dead letters.

:class:`PoisonBrake` (as arroyo's ``DlqLimit``) stops a worker whose input is mostly invalid,
most likely a bug or a wrong deploy rather than bad records: more than
``RATIFIER_POISON_MAX_CONSECUTIVE`` invalid records in a row, or an invalid ratio above
``RATIFIER_POISON_MAX_RATIO`` once ``BRAKE_MIN_RECORDS`` records were seen. The worker then
stops with :class:`PoisonLimitExceeded`, and the record that tripped it is not committed: after
the fix, it is read again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from ratifier.core.config import Settings
from ratifier.core.errors import RatifierError
from ratifier.core.models import DeadLetter, DeadLetterReason, now_ms

__all__ = [
    "BRAKE_MIN_RECORDS",
    "InvalidRecord",
    "PoisonBrake",
    "PoisonGate",
    "PoisonHandling",
    "PoisonLimitExceeded",
    "PoisonMode",
    "dead_letter_for",
    "dead_letter_key",
]

logger = logging.getLogger(__name__)

# The ratio check waits for this many records: a worker whose first record is bad is not broken.
BRAKE_MIN_RECORDS = 100


class InvalidRecord(RatifierError):
    """Raised by a handler: this record cannot be used (it is never retried)."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class PoisonLimitExceeded(RatifierError):
    """Too many invalid records: the worker stops rather than dead-letter a whole topic."""


class PoisonMode(StrEnum):
    DEAD_LETTER = "dead-letter"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class PoisonHandling:
    mode: PoisonMode = PoisonMode.DEAD_LETTER
    max_consecutive: int | None = 1000
    max_ratio: float | None = 0.9

    @classmethod
    def from_settings(cls, settings: Settings, *, mode: PoisonMode | None = None) -> PoisonHandling:
        """The setting of ``settings``; ``mode`` overrides it (readers that always skip)."""
        return cls(
            mode or PoisonMode(settings.poison),
            settings.poison_max_consecutive or None,
            settings.poison_max_ratio or None,
        )


class PoisonBrake:
    """Counts valid and invalid records; :meth:`invalid` raises when a limit is passed."""

    def __init__(self, handling: PoisonHandling) -> None:
        self.handling = handling
        self.valid = 0
        self.invalid_total = 0
        self.consecutive = 0

    def ok(self, count: int = 1) -> None:
        if count > 0:
            self.valid += count
            self.consecutive = 0

    def invalid(self, detail: str) -> None:
        self.invalid_total += 1
        self.consecutive += 1
        limit = self.handling.max_consecutive
        if limit is not None and self.consecutive > limit:
            raise PoisonLimitExceeded(
                f"{self.consecutive} invalid records in a row (RATIFIER_POISON_MAX_CONSECUTIVE="
                f"{limit}); the last: {detail}"
            )
        seen = self.valid + self.invalid_total
        ratio = self.handling.max_ratio
        if ratio is not None and seen >= BRAKE_MIN_RECORDS and self.invalid_total / seen > ratio:
            raise PoisonLimitExceeded(
                f"{self.invalid_total} of {seen} records invalid (RATIFIER_POISON_MAX_RATIO="
                f"{ratio:g}); the last: {detail}"
            )


class PoisonGate:
    """The poison setting and its brake for one worker loop: what the consumer runtime applies
    to every invalid record, and what a loop of its own (the tally engine) calls.

    :meth:`ok` counts valid records; :meth:`reject` counts an invalid one and says whether to
    dead-letter it (True) or skip it (False, logged here). Past a brake limit it logs the stop
    once and raises :class:`PoisonLimitExceeded`, and raises that same error, without counting
    or logging, for every invalid record after it (records still in flight).
    """

    def __init__(self, handling: PoisonHandling) -> None:
        self.handling = handling
        self._brake = PoisonBrake(handling)
        self.tripped: PoisonLimitExceeded | None = None

    @property
    def invalid(self) -> int:
        return self._brake.invalid_total

    def ok(self, count: int = 1) -> None:
        self._brake.ok(count)

    def reject(self, where: str, error: InvalidRecord) -> bool:
        """``where`` (topic[partition]@offset) is invalid: True to dead-letter it, False if
        skipped; raises :class:`PoisonLimitExceeded` past a limit."""
        if self.tripped is not None:
            raise self.tripped
        try:
            self._brake.invalid(f"{where}: {error.detail}")
        except PoisonLimitExceeded as limit:
            self.tripped = limit
            logger.error("stopping: %s", limit)
            raise
        if self.handling.mode is PoisonMode.SKIP:
            logger.warning("skipped invalid record %s (%s): %s", where, error.reason, error.detail)
            return False
        return True


def dead_letter_for(
    value: bytes, topic: str, partition: int, offset: int, error: InvalidRecord
) -> DeadLetter:
    return DeadLetter(value, topic, partition, offset, error.reason, error.detail, now_ms())


def dead_letter_key(letter: DeadLetter) -> bytes:
    """A dead letter's record key: where the record came from."""
    return f"{letter.source_topic}:{letter.partition}:{letter.offset}".encode()
