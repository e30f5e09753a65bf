"""The trusted answers store: a Redis read model of confirmed and corrected outcomes only.

This is what retrieval systems (RAG indexes, answer caches) and training-data pipelines should
read: every answer in it was either passed by the validators' consensus or settled by a named
reviewer, and carries that provenance. Unresolved cases and cases still pending (in review, or
not decided yet) are never in it: :meth:`TrustedStore.put` refuses an unresolved outcome, and
only the outcomes runtime's projection of ``<prefix>.outcomes`` writes it.

One hash per case, ``<prefix>:trusted:<case id>``, holding the outcome as Avro (``outcome``) and
its main fields as text for tools that read Redis directly; ``<prefix>:trusted:index`` is a
sorted set of case ids by decision time. Writing the same outcome again changes nothing, so the
projection may replay the topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.models import Outcome, OutcomeClass
from ratifier.io.redis_client import key_prefix
from ratifier.schemas import codec

TRUSTED_KINDS: Final = frozenset({OutcomeClass.CONFIRMED, OutcomeClass.CORRECTED})


class TrustedStore:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        # Any: redis-py types replies as bytes | str (decode_responses is a runtime flag); the
        # client of connect() always answers bytes.
        self.redis: Any = redis
        self._base = f"{key_prefix(settings)}trusted:"
        self.index_key = f"{self._base}index"

    def key(self, case_id: str) -> str:
        return f"{self._base}case:{case_id}"

    async def put(self, outcome: Outcome) -> bool:
        """Store a confirmed or corrected outcome; False (nothing stored) for any other kind."""
        if outcome.kind not in TRUSTED_KINDS:
            return False
        fields: Mapping[str, bytes | str | int] = {
            "outcome": codec.encode(outcome),
            "kind": outcome.kind.value,
            "content": outcome.content or "",
            "query": outcome.query,
            "reviewer": outcome.reviewer,
            "policy_version": outcome.policy_version,
            "decided_at_ms": outcome.decided_at_ms,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(outcome.case_id), mapping=fields)
            pipe.zadd(self.index_key, {outcome.case_id: outcome.decided_at_ms})
            await pipe.execute()
        return True

    async def get(self, case_id: str) -> Outcome | None:
        """The trusted answer of a case; None if it has none (pending, unresolved, unknown)."""
        raw = await self.redis.hget(self.key(case_id), "outcome")
        return None if raw is None else codec.decode_as(raw, Outcome)

    async def case_ids(self) -> list[str]:
        """Every case with a trusted answer, oldest decision first."""
        return [raw.decode() for raw in await self.redis.zrange(self.index_key, 0, -1)]

    async def count(self) -> int:
        return int(await self.redis.zcard(self.index_key))
