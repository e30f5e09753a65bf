"""The tally's default engine: the pure processor driven by Kafka transactions (exactly-once).

Per input partition, one transactional producer with a stable id writes the partition's
decisions, dead letters, state changelog and input offsets in one transaction per commit
interval; a new owner's producer fences the old one. See ``docs/delivery.md``.
"""

from ratifier.streams.engines.transactional.engine import TransactionalTally

__all__ = ["TransactionalTally"]
