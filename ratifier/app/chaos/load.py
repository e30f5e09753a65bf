"""The good load: the demo's first-attempt candidates, sent in chunks between faults.

A run of N faults splits the load into N + 1 chunks: chunk k is sent once fault k has begun,
and fault k begins once chunk k - 1 is out. So every fault lands while cases are in flight,
however long a fault takes to apply (a restarted tally needs ~10 s to rejoin its group), and
cases keep arriving while the pipeline recovers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from ratifier.app.demo.generator import chance
from ratifier.app.demo.runner import FIRST_ATTEMPT_GOOD_RATE, demo_content
from ratifier.core.models import Candidate
from ratifier.io.client import Client

logger = logging.getLogger(__name__)


@dataclass
class LoadGate:
    """Interleaves load chunks and faults (see the module docstring)."""

    faults: int
    _chunks_sent: int = 0
    _faults_begun: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def before_chunk(self, chunk: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._faults_begun >= chunk)

    async def chunk_sent(self) -> None:
        async with self._changed:
            self._chunks_sent += 1
            self._changed.notify_all()

    async def before_fault(self, fault: int) -> None:
        """Wait until chunk ``fault`` (0-based) is out, then let the next chunk go."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._chunks_sent > fault)
            self._faults_begun += 1
            self._changed.notify_all()


@dataclass
class Load:
    client: Client
    cases: int
    rate_per_s: float
    gate: LoadGate
    case_ids: list[str] = field(default_factory=list)
    case_set: set[str] = field(default_factory=set)  # the same, for membership tests
    send_retries: int = 0  # sends that failed (broker away) and were repeated

    async def run(self) -> None:
        chunks = self.gate.faults + 1
        bounds = [round(self.cases * k / chunks) for k in range(chunks + 1)]
        for chunk in range(chunks):
            await self.gate.before_chunk(chunk)
            started = time.monotonic()
            for n, index in enumerate(range(bounds[chunk], bounds[chunk + 1])):
                await self._send(self._candidate(index))
                # Paced, so a chunk spreads over time instead of one burst the tally reads later.
                delay = started + (n + 1) / self.rate_per_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.gate.chunk_sent()

    def _candidate(self, index: int) -> Candidate:
        prefix = self.client.settings.topic_prefix
        good = chance("first", prefix, index) < FIRST_ATTEMPT_GOOD_RATE
        query, content = demo_content(index, good)
        candidate = self.client.candidate(
            content,
            query=query,
            category="billing",
            metadata={"truth": "accept" if good else "reject"},
        )
        self.case_ids.append(candidate.case_id)
        self.case_set.add(candidate.case_id)
        return candidate

    async def _send(self, candidate: Candidate) -> None:
        # While the broker is away a send fails after its timeout; the same candidate is sent
        # again, which the tally recognises as a redelivery if the first one got through.
        while True:
            try:
                await self.client.send(candidate)
                return
            except KafkaError as exc:
                self.send_retries += 1
                logger.warning("sending case %s failed (%r); again", candidate.case_id, exc)
                await asyncio.sleep(1.0)
