"""The generator loop: retry requests in, next-attempt candidates out.

The user's function receives the :class:`RetryRequest` — the failed candidate, why it failed, and
every dissenting validator's structured reasons — and returns new content (or a
:class:`Revision` with content and metadata), from which the next attempt's candidate is built.
The candidate id of an attempt is derived from (case, attempt), so a redelivered retry request
produces the same id and the tally ignores the repeat.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric

from ratifier.core.endpoints import Endpoints
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Candidate, DeadLetterReason, RetryRequest, now_ms
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    PoisonHandling,
    RuntimeWorker,
    dead_letter_sender,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.metrics import ConsumerLag, Observability, ReadAtScrape, assigned_readiness
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

_CANDIDATE_NAMESPACE = uuid.UUID("6f2a5d0e-3c1b-4e8a-9a55-2b7c1d0f4e11")


@dataclass(frozen=True, slots=True)
class Revision:
    content: str
    metadata: Mapping[str, str] = field(default_factory=dict)


Improve = Callable[[RetryRequest], Awaitable[str | Revision]]


def candidate_id_for(case_id: str, attempt: int) -> str:
    return str(uuid.uuid5(_CANDIDATE_NAMESPACE, f"{case_id}/{attempt}"))


def next_candidate(retry: RetryRequest, revision: str | Revision, producer: str) -> Candidate:
    if isinstance(revision, str):
        revision = Revision(revision)
    failed = retry.candidate
    return Candidate(
        case_id=retry.case_id,
        attempt=retry.next_attempt,
        candidate_id=candidate_id_for(retry.case_id, retry.next_attempt),
        policy=failed.policy,
        category=failed.category,
        query=failed.query,
        content=revision.content,
        producer=producer,
        produced_at_ms=now_ms(),
        previous_candidate_ids=(*failed.previous_candidate_ids, failed.candidate_id),
        metadata={**failed.metadata, **revision.metadata},
    )


class GeneratorWorker(RuntimeWorker):
    """Consumes ``<prefix>.decisions.retry`` as group ``<prefix>.generator.<id>``, on the
    consumer runtime: up to ``concurrency`` retry requests are improved at once."""

    _producer: AIOKafkaProducer

    def __init__(
        self,
        endpoints: Endpoints,
        poison: PoisonHandling,
        improve: Improve,
        *,
        generator_id: str = "default",
        concurrency: int = 64,
    ) -> None:
        self.improve = improve
        self.generator_id = generator_id
        names = endpoints.topics
        self._candidates_topic = names.candidates
        client_id = f"generator-{generator_id}"
        self._consumer = make_consumer(
            endpoints.kafka, group_id=names.generator_group(generator_id), client_id=client_id
        )
        self._producer = make_producer(endpoints.kafka, client_id=client_id)
        self.runtime = ConsumerRuntime(
            self._consumer,
            [names.retry],
            self._handle,
            limits=Limits(max_in_flight=concurrency),
            poison=poison,
            dead_letter=dead_letter_sender(self._producer, names.deadletter),
        )
        self.produced = 0
        self.failed = 0

    def observability(self) -> Observability:
        """Its /metrics series (its counters, read when scraped) and /readyz."""
        registry = CollectorRegistry()
        lag = ConsumerLag(registry, self._consumer)
        registry.register(ReadAtScrape(self._families))
        what = f"generator {self.generator_id}"
        return Observability(
            registry, lambda: assigned_readiness(self._consumer, what), (lag.refresh,)
        )

    def _families(self) -> Iterable[Metric]:
        made = CounterMetricFamily(
            "ratifier_generator_attempts",
            "Next attempts produced, or failed (the case then waits for the retry timeout)",
            labels=["generator", "result"],
        )
        made.add_metric([self.generator_id, "produced"], self.produced)
        made.add_metric([self.generator_id, "failed"], self.failed)
        yield made

    async def _handle(self, record: ConsumerRecord) -> None:
        try:
            retry = codec.decode_as(record.value or b"", RetryRequest)
        except WireFormatError as exc:
            raise InvalidRecord(DeadLetterReason.MALFORMED, f"not a retry request: {exc}") from None
        try:
            revision = await self.improve(retry)
        except Exception:
            # The case stays open until the tally prunes it; the failure must be visible.
            logger.exception(
                "generator failed for case %s attempt %d", retry.case_id, retry.next_attempt
            )
            self.failed += 1
            return
        candidate = next_candidate(retry, revision, producer=f"generator:{self.generator_id}")
        delivery = await self._producer.send(
            self._candidates_topic, codec.encode(candidate), key=candidate.case_id.encode()
        )
        await delivery  # acknowledged before the retry request counts as done
        self.produced += 1
