"""One consumer runtime for every worker but the transactional tally (docs/architecture.md)."""

from ratifier.io.consume.offsets import OffsetTracker, PartitionOffsets
from ratifier.io.consume.poison import (
    InvalidRecord,
    PoisonBrake,
    PoisonHandling,
    PoisonLimitExceeded,
    PoisonMode,
)
from ratifier.io.consume.runtime import Batch, BatchHandler, ConsumerRuntime, Handler, Limits
from ratifier.io.consume.transactional import TransactionalCommits
from ratifier.io.consume.worker import RuntimeWorker, dead_letter_sender

__all__ = [
    "Batch",
    "BatchHandler",
    "ConsumerRuntime",
    "Handler",
    "InvalidRecord",
    "Limits",
    "OffsetTracker",
    "PartitionOffsets",
    "PoisonBrake",
    "PoisonHandling",
    "PoisonLimitExceeded",
    "PoisonMode",
    "RuntimeWorker",
    "TransactionalCommits",
    "dead_letter_sender",
]
