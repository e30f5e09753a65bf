"""The review queue's feeder: ``<prefix>.decisions.escalate`` -> the Redis review queue.

A consumer group (``<prefix>.review``) on the consumer runtime, offsets committed once a packet is
queued: a packet may be read twice after a crash, and the queue's enqueue (one item per case,
created atomically) queues a redelivered escalation once. An undecodable record goes to the dead
letters with its reason (``RATIFIER_POISON``). A packet whose earlier attempts are stubs
(``earlier_attempts = "referenced"``) is queued with them resolved from their retry requests
(ratifier.io.attempts).
"""

from __future__ import annotations

import dataclasses
import logging

from aiokafka import ConsumerRecord
from redis.asyncio import Redis

from ratifier.core.errors import WireFormatError
from ratifier.core.models import DeadLetterReason, EscalationPacket
from ratifier.features.review.config import ReviewConfig
from ratifier.features.review.io.queue import ReviewQueue
from ratifier.io.attempts import full_attempts
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    RuntimeWorker,
    dead_letter_sender,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.schemas import codec

logger = logging.getLogger(__name__)


class ReviewFeeder(RuntimeWorker):
    def __init__(self, config: ReviewConfig, redis: Redis) -> None:
        self._kafka = kafka = config.endpoints.kafka
        self.names = config.endpoints.topics
        self.queue = ReviewQueue(redis, config, reviewers=None)
        client_id = f"ratifier-review-feed-{config.endpoints.worker_id}"
        self._consumer = make_consumer(
            kafka, group_id=self.names.review_feed_group, client_id=client_id
        )
        self._producer = make_producer(kafka, client_id=client_id)
        self.runtime = ConsumerRuntime(
            self._consumer,
            [self.names.escalate],
            self._handle,
            limits=Limits(max_in_flight=64),
            poison=config.poison,
            dead_letter=dead_letter_sender(self._producer, self.names.deadletter),
        )
        self.queued = 0
        self.repeated = 0

    async def on_start(self) -> None:
        await self.queue.ensure_groups()

    async def _handle(self, record: ConsumerRecord) -> None:
        try:
            packet = codec.decode_as(record.value or b"", EscalationPacket)
        except WireFormatError as exc:
            raise InvalidRecord(
                DeadLetterReason.MALFORMED, f"not an escalation packet: {exc}"
            ) from None
        if any(a.retry_decision_id and not a.candidate.content for a in packet.attempts):
            # Earlier attempts carried by reference: reviewers need them in full.
            attempts = await full_attempts(self._kafka, self.names, packet)
            packet = dataclasses.replace(packet, attempts=attempts)
        if await self.queue.enqueue(packet):
            self.queued += 1
        else:
            self.repeated += 1
