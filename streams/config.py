"""The tally's own settings: what its parts take, built once from the environment's Settings.

``Settings`` (30 fields, read from ``RATIFIER_*``) stays the one reader of the environment; a
tally worker turns it into this small typed config once, and its processor, partition
transactions and changelog reader take it (or the part of it they need), never Settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratifier.core.config import Settings
from ratifier.core.connection import KafkaConnection
from ratifier.core.topics import TopicNames
from ratifier.io.consume import PoisonHandling, PoisonMode
from ratifier.streams.rules.limits import SizeLimits
from ratifier.streams.rules.tally import TallySettings


@dataclass(frozen=True, slots=True)
class TallyConfig:
    names: TopicNames
    worker_id: str  # names this worker's clients and the headers of what it writes
    connection: KafkaConnection  # shared with every Kafka client (docs/security.md)
    rules: TallySettings  # hold, retention, retry wait, finished-case horizon
    limits: SizeLimits
    signing_key: Path | None  # signs every decision (docs/signing.md)
    commit_interval_ms: int
    tick_interval_s: float
    # The brake on input the tally cannot read (RATIFIER_POISON_MAX_*); its mode is always
    # dead-letter: every record the tally rejects goes to the dead-letter topic with its reason.
    poison: PoisonHandling

    @classmethod
    def from_settings(cls, settings: Settings) -> TallyConfig:
        return cls(
            names=TopicNames.from_settings(settings),
            worker_id=settings.worker_id,
            connection=settings.kafka_connection(),
            rules=TallySettings(
                hold_ms=settings.hold_ms,
                retention_ms=settings.retention_ms,
                retry_wait_ms=settings.retry_wait_ms,
                finished_horizon_ms=settings.finished_horizon_ms,
            ),
            limits=SizeLimits.from_settings(settings),
            signing_key=settings.tally_signing_key,
            commit_interval_ms=settings.commit_interval_ms,
            tick_interval_s=settings.tick_interval_s,
            poison=PoisonHandling.from_settings(settings, mode=PoisonMode.DEAD_LETTER),
        )
