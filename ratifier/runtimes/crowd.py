"""A labelled crowd as validators: for ``ratifier replay``, which evaluates a policy on history.

One worker stands in for every validator of a labelled dataset. It consumes the candidates
topic like any validator group and, for each candidate, publishes one verdict per worker who
labelled that item (the case id is the item id), with the worker's id as validator id: ACCEPT
when the worker's label is the label the candidate proposes (its content), REJECT otherwise.
The verdicts go through the broker to the tally like any validator's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaProducer, ConsumerRecord

from ratifier.core.endpoints import Endpoints
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Candidate, DeadLetterReason, Vote, verdict_on
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    PoisonHandling,
    PoisonMode,
    RuntimeWorker,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.schemas import codec

__all__ = ["LabelCrowdWorker"]

logger = logging.getLogger(__name__)


class LabelCrowdWorker(RuntimeWorker):
    """Consumes ``<prefix>.candidates`` as group ``<prefix>.crowd``; ``labels`` maps an item
    (case) id to its (worker id, label) pairs, in the order they are published."""

    _producer: AIOKafkaProducer

    def __init__(
        self,
        endpoints: Endpoints,
        poison: PoisonHandling,
        labels: Mapping[str, Sequence[tuple[str, str]]],
    ) -> None:
        self.labels = labels
        names = endpoints.topics
        self._verdicts_topic = names.verdicts
        self._consumer = make_consumer(
            endpoints.kafka, group_id=f"{names.prefix}.crowd", client_id="crowd"
        )
        self._producer = make_producer(endpoints.kafka, client_id="crowd")
        # The tally dead-letters malformed candidates; the crowd only skips them, as validators do.
        self.runtime = ConsumerRuntime(
            self._consumer,
            [names.candidates],
            self._handle,
            poison=dataclasses.replace(poison, mode=PoisonMode.SKIP),
        )

    async def _handle(self, record: ConsumerRecord) -> None:
        try:
            candidate = codec.decode_as(record.value or b"", Candidate)
        except WireFormatError as exc:
            raise InvalidRecord(DeadLetterReason.MALFORMED, f"not a candidate: {exc}") from None
        labels = self.labels.get(candidate.case_id)
        if labels is None:
            logger.warning("no labels for case %s", candidate.case_id)
            return
        deliveries = []
        for worker, label in labels:
            vote = Vote.ACCEPT if label == candidate.content else Vote.REJECT
            verdict = verdict_on(candidate, worker, vote, confidence=1.0, version="label")
            deliveries.append(
                await self._producer.send(
                    self._verdicts_topic, codec.encode(verdict), key=candidate.case_id.encode()
                )
            )
        await asyncio.gather(*deliveries)
