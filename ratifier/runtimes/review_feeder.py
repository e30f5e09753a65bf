"""The review queue's feeder: ``<prefix>.decisions.escalate`` -> the Redis review queue.

A consumer group (``<prefix>.review``), offsets committed after the batch is queued: a batch may
be read twice after a crash, and the queue's enqueue (one item per case, created atomically)
queues a redelivered escalation once. An undecodable record goes to the dead letters with its
reason. A packet whose earlier attempts are stubs (``earlier_attempts = "referenced"``) is queued
with them resolved from their retry requests (ratifier.io.attempts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import DeadLetter, DeadLetterReason, EscalationPacket, now_ms
from ratifier.core.topics import TopicNames
from ratifier.io.attempts import full_attempts
from ratifier.io.kafka import ConsumeProduceWorker, commit_processed, make_consumer, make_producer
from ratifier.io.review_queue import ReviewQueue
from ratifier.schemas import codec

logger = logging.getLogger(__name__)


class ReviewFeeder(ConsumeProduceWorker):
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self._settings = settings
        self.names = TopicNames.from_settings(settings)
        self.queue = ReviewQueue(redis, settings, reviewers=None)
        client_id = f"ratifier-review-feed-{settings.worker_id}"
        self._consumer = make_consumer(
            settings,
            self.names.escalate,
            group_id=self.names.review_feed_group,
            client_id=client_id,
        )
        self._producer = make_producer(settings, client_id=client_id)
        self.queued = 0
        self.repeated = 0

    async def start(self) -> None:
        await self.queue.ensure_groups()
        await super().start()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=64)
            if not batches:
                continue
            for records in batches.values():
                for record in records:
                    try:
                        packet = codec.decode_as(record.value or b"", EscalationPacket)
                    except WireFormatError as exc:
                        await self._dead_letter(record.topic, record.partition, record.offset,
                                                record.value or b"", str(exc))  # fmt: skip
                        continue
                    if any(
                        a.retry_decision_id and not a.candidate.content for a in packet.attempts
                    ):
                        # Earlier attempts carried by reference: reviewers need them in full.
                        attempts = await full_attempts(self._settings, packet)
                        packet = dataclasses.replace(packet, attempts=attempts)
                    if await self.queue.enqueue(packet):
                        self.queued += 1
                    else:
                        self.repeated += 1
            await commit_processed(self._consumer, batches)

    async def _dead_letter(
        self, topic: str, partition: int, offset: int, value: bytes, detail: str
    ) -> None:
        letter = DeadLetter(
            value, topic, partition, offset, DeadLetterReason.MALFORMED,
            f"not an escalation packet: {detail}", now_ms(),
        )  # fmt: skip
        key = f"{topic}:{partition}:{offset}".encode()
        await self._producer.send_and_wait(self.names.deadletter, codec.encode(letter), key=key)
        logger.error("dead-lettered %s[%d]@%d: %s", topic, partition, offset, detail)
