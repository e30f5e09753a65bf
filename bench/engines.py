"""Which tally engine a benchmark runs, and which one actually ran.

The engine is chosen by ``RATIFIER_TALLY_ENGINE`` (``Settings.tally_engine``), which the bench
passes to ``ratifier tally run`` through :meth:`ratifier.ops.fleet.Fleet.env_for`. The bench does
not take the setting's word for it: a tally that writes in transactions leaves transaction
markers (control records) in its output partitions, which occupy offsets but are never delivered
to a consumer, so its topics' offsets run ahead of the records they hold. The faust engine
writes no markers. :func:`engine_ran` reports what it finds, and the table flags a run whose
engine was not the one asked for (e.g. a build where ``tally run`` still always runs faust).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ratifier.core.config import Settings
from ratifier.io.client import assign_all
from ratifier.io.kafka import make_consumer

# The values of Settings.tally_engine (ratifier.core.config.TALLY_ENGINES).
TRANSACTIONAL, FAUST = "transactional", "faust"
BOTH = "both"
CHOICES = (BOTH, TRANSACTIONAL, FAUST)
# Nothing more arrives for this long: the reader has seen everything committed so far.
IDLE_S = 1.0


def chosen(option: str) -> tuple[str, ...]:
    """The engines an ``--engine`` value selects, in the order they run."""
    return (TRANSACTIONAL, FAUST) if option == BOTH else (option,)


async def engine_ran(settings: Settings, topics: Sequence[str]) -> str:
    """``transactional`` if ``topics`` hold transaction markers, else ``faust``.

    Reads ``topics`` from the start (read_committed, no group) up to their end offsets, or until
    nothing arrives for ``IDLE_S`` (a transaction still open holds a read_committed reader
    back), and compares the offsets it moved over with the records it was given.
    """
    consumer = make_consumer(settings, group_id=None, client_id="bench-engine-ran")
    await consumer.start()
    try:
        await assign_all(consumer, topics, from_beginning=True)
        partitions = list(consumer.assignment())
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        records = 0
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < IDLE_S:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            got = sum(len(rs) for rs in batch.values())
            records += got
            if got:
                quiet_since = time.monotonic()
        # Control batches move a consumer's position on without yielding a record.
        reached = {tp: await consumer.position(tp) for tp in partitions}
        covered = sum(reached[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()
    return TRANSACTIONAL if covered > records else FAUST
