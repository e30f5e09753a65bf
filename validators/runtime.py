"""Runs a validator callable as a Kafka consumer group: candidates in, verdicts out.

Every process started with the same validator id joins group ``<prefix>.validator.<id>``, so
Kafka spreads the candidate partitions over them and each candidate is judged once per group.
Offsets are committed only after the batch's verdicts are acknowledged (at-least-once); the
tally counts a validator's repeated verdict for an attempt once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiokafka import TopicPartition

from ratifier.core.config import Settings
from ratifier.core.errors import ValidatorTimeout, WireFormatError
from ratifier.core.models import Candidate, Judgement, Reason, Verdict, Vote, verdict_on
from ratifier.core.signing import Signer
from ratifier.core.topics import TopicNames
from ratifier.io.decided import DecidedAttempts
from ratifier.io.kafka import ConsumeProduceWorker, commit_processed, make_consumer, make_producer
from ratifier.io.keys import signer_from
from ratifier.io.metrics import Observability
from ratifier.schemas import codec
from ratifier.validators.metrics import ValidatorMetrics

logger = logging.getLogger(__name__)

Judge = Callable[[Candidate], Awaitable[Judgement]]

# The event-loop time by which the validator call in progress must return (its --timeout).
# Per task: each candidate is judged in a task of its own, which gets its own copy.
_deadline: ContextVar[float | None] = ContextVar("ratifier_validator_deadline", default=None)


def time_left_s() -> float | None:
    """Seconds left of the runtime's time limit for the validator call in progress.

    None outside :func:`judge_safely`. A validator that retries reads it to stop in time with its
    own error, rather than be cut off and recorded as a bare timeout.
    """
    deadline = _deadline.get()
    return None if deadline is None else deadline - asyncio.get_running_loop().time()


async def judge_safely(judge: Judge, candidate: Candidate, timeout_s: float) -> Judgement:
    """Call the validator; a failure or timeout becomes an ABSTAIN with the error as its reason."""
    limit = asyncio.timeout(timeout_s)
    error: Exception
    token = _deadline.set(asyncio.get_running_loop().time() + timeout_s)
    try:
        async with limit:
            return await judge(candidate)
    except TimeoutError as exc:
        # Not expired: raised by the validator's own code (e.g. an HTTP client's timeout).
        ours = limit.expired()
        error = ValidatorTimeout(f"no answer within {timeout_s:g}s") if ours else exc
        code = "validator.timeout"
    except ValidatorTimeout as exc:  # the validator's own, more specific time limit
        error, code = exc, "validator.timeout"
    except Exception as exc:  # any failure of user code is reported, never dropped
        error, code = exc, "validator.error"
        logger.warning("validator failed on %s: %r", candidate.candidate_id, exc)
    finally:
        _deadline.reset(token)
    message = f"{type(error).__name__}: {error}"[:1000]
    return Judgement(vote=Vote.ABSTAIN, confidence=0.0, reasons=(Reason(code, message),))


def to_verdict(
    candidate: Candidate,
    judgement: Judgement,
    *,
    validator_id: str,
    validator_version: str,
    latency_ms: int,
) -> Verdict:
    return verdict_on(
        candidate,
        validator_id,
        judgement.vote,
        confidence=min(1.0, max(0.0, judgement.confidence)),
        version=validator_version,
        severity=judgement.severity,
        reasons=judgement.reasons,
        latency_ms=latency_ms,
    )


class ValidatorWorker(ConsumeProduceWorker):
    """One instance of a validator group. Use ``async with`` or ``start()`` / ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        validator_id: str,
        judge: Judge,
        *,
        version: str | None = None,
        timeout_s: float = 30.0,
        concurrency: int = 16,
        max_batch: int = 256,
        signer: Signer | None = None,
        delay_s: float = 0.0,
        skip_decided: bool = False,
    ) -> None:
        """``signer`` signs every verdict (docs/signing.md); by default, the key in the file
        ``settings.signing_key`` (RATIFIER_SIGNING_KEY) if set, else verdicts go unsigned.

        Sequential consensus ("Waves" in docs/validators.md): ``delay_s`` waits that long after
        reading each candidate before judging it, and ``skip_decided`` then skips candidates
        whose attempt the tally has decided meanwhile (no call, no verdict)."""
        self.settings = settings
        self.validator_id = validator_id
        self.judge = judge
        self.version = version or str(getattr(judge, "version", "0"))
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.signer = signer or signer_from(settings.signing_key)
        self._limit = asyncio.Semaphore(concurrency)
        names = TopicNames.from_settings(settings)
        self._verdicts_topic = names.verdicts
        client_id = f"validator-{validator_id}"
        self._consumer = make_consumer(
            settings,
            names.candidates,
            group_id=names.validator_group(validator_id),
            client_id=client_id,
            max_poll_records=max_batch,
        )
        self._producer = make_producer(settings, client_id=client_id)
        self.metrics = ValidatorMetrics(validator_id, self._consumer)  # /metrics, docs/monitoring
        self.judged = 0
        self.skipped = 0
        self.delay_s = delay_s
        self.skipped_decided = 0  # candidates not judged: their attempt was already decided
        self.decided = (
            DecidedAttempts(settings, client_id=f"{client_id}-decided") if skip_decided else None
        )

    async def start(self) -> None:
        await super().start()
        if self.decided is not None:
            try:
                await self.decided.start()
            except BaseException:
                await super().stop()
                raise

    async def stop(self) -> None:
        try:
            if self.decided is not None:
                await self.decided.stop()
            await super().stop()
        finally:
            aclose = getattr(self.judge, "aclose", None)  # e.g. the LLM judge's HTTP session
            if aclose is not None:
                await aclose()

    def observability(self) -> Observability:
        return self.metrics.observability()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Judge candidates until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if batches:
                await self._process(batches)

    async def _process(self, batches: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        pending = []
        for records in batches.values():
            for record in records:
                try:
                    candidate = codec.decode_as(record.value or b"", Candidate)
                except WireFormatError as exc:
                    # The tally dead-letters malformed candidates; N validators must not repeat it.
                    self.skipped += 1
                    logger.warning(
                        "skipping undecodable candidate at offset %d: %s", record.offset, exc
                    )
                    continue
                pending.append(self._judge_one(candidate))
        deliveries = [d for d in await asyncio.gather(*pending) if d is not None]
        await asyncio.gather(*deliveries)
        await commit_processed(self._consumer, batches)
        self.judged += len(deliveries)

    async def _judge_one(self, candidate: Candidate) -> asyncio.Future | None:  # type: ignore[type-arg]
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)  # a later wave: give earlier ones time to decide
        if self.decided is not None and (candidate.case_id, candidate.attempt) in self.decided:
            self.skipped_decided += 1
            return None
        async with self._limit:
            started = time.perf_counter()
            judgement = await judge_safely(self.judge, candidate, self.timeout_s)
            latency_ms = int((time.perf_counter() - started) * 1000)
        verdict = to_verdict(
            candidate,
            judgement,
            validator_id=self.validator_id,
            validator_version=self.version,
            latency_ms=latency_ms,
        )
        self.metrics.observe(verdict)
        if self.signer is not None:
            verdict = self.signer.sign(verdict)
        delivery: asyncio.Future[Any] = await self._producer.send(
            self._verdicts_topic, codec.encode(verdict), key=candidate.case_id.encode()
        )
        return delivery
