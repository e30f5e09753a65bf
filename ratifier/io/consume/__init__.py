"""One consumer runtime for every worker but the transactional tally (docs/architecture.md).

Workers: :class:`ConsumerRuntime` (records out of order with contiguous commits, or whole
batches; with :class:`TransactionalCommits`, each batch exactly once) run by a
:class:`RuntimeWorker`.

Pieces for a loop of its own (the transactional tally keeps its per-partition transactions and
calls these, so decoding failures, the poison setting, the brake and the lifecycle behave as in
every other worker):

- ``PoisonHandling.from_settings(settings)``: ``RATIFIER_POISON`` and the brake's limits;
- ``PoisonGate(handling)``: ``gate.ok(n)`` after ``n`` valid records; for an invalid one
  ``gate.reject("topic[partition]@offset", InvalidRecord(reason, detail))`` returns True
  (dead-letter it) or False (skipped, logged), and past a limit logs the stop once and raises
  :class:`PoisonLimitExceeded` (again, silently, for records after it): the loop stops without
  committing that record;
- ``dead_letter_for(value, topic, partition, offset, error)`` builds the :class:`DeadLetter`,
  ``dead_letter_key(letter)`` its record key (send it inside the loop's own transaction);
- :class:`WorkerLifecycle`: ``start`` / ``stop`` / ``async with`` over ``_producer`` (started
  first: a transactional producer fences before anything is read) and ``_consumer``, with
  ``on_start`` / ``on_stop`` hooks; the loop brings its own ``run(stop)``.
"""

from ratifier.io.consume.offsets import OffsetTracker, PartitionOffsets
from ratifier.io.consume.poison import (
    InvalidRecord,
    PoisonBrake,
    PoisonGate,
    PoisonHandling,
    PoisonLimitExceeded,
    PoisonMode,
    dead_letter_for,
    dead_letter_key,
)
from ratifier.io.consume.runtime import Batch, BatchHandler, ConsumerRuntime, Handler, Limits
from ratifier.io.consume.transactional import TransactionalCommits
from ratifier.io.consume.worker import RuntimeWorker, WorkerLifecycle, dead_letter_sender

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
    "PoisonGate",
    "PoisonHandling",
    "PoisonLimitExceeded",
    "PoisonMode",
    "RuntimeWorker",
    "TransactionalCommits",
    "WorkerLifecycle",
    "dead_letter_for",
    "dead_letter_key",
    "dead_letter_sender",
]
