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

With ``RATIFIER_OUTCOMES_PUBLIC_KEY`` set, only outcomes sealed by that key get in (a forged
outcome written straight to the topic is refused), the seal is kept in the hash (``signature``,
``key_id``) and :meth:`TrustedStore.get` checks it again on the way out (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.models import Outcome, OutcomeClass
from ratifier.core.outcome_signing import OutcomeSeal, UntrustedOutcome, check_seal
from ratifier.core.signing import SignatureCheck, decode_public_key
from ratifier.io.redis_client import key_prefix
from ratifier.schemas import codec

TRUSTED_KINDS: Final = frozenset({OutcomeClass.CONFIRMED, OutcomeClass.CORRECTED})

logger = logging.getLogger(__name__)


class TrustedStore:
    def __init__(self, redis: Redis, key_prefix: str, public_key: str | None) -> None:
        """``public_key``: the outcomes key (base64 Ed25519); with it, only sealed outcomes in."""
        # Any: redis-py types replies as bytes | str (decode_responses is a runtime flag); the
        # client of connect() always answers bytes.
        self.redis: Any = redis
        self._base = f"{key_prefix}trusted:"
        self.index_key = f"{self._base}index"
        self.public_key = decode_public_key(public_key) if public_key else None
        self.refused = 0  # outcomes not let in: no valid seal of the outcomes key

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> TrustedStore:
        return cls(redis, key_prefix(settings), settings.outcomes_public_key)

    def key(self, case_id: str) -> str:
        return f"{self._base}case:{case_id}"

    async def put(self, outcome: Outcome, seal: OutcomeSeal | None = None) -> bool:
        """Store a confirmed or corrected outcome; False (nothing stored) for any other kind,
        and, with an outcomes public key, for one its ``seal`` does not prove signed by it."""
        if outcome.kind not in TRUSTED_KINDS:
            return False
        if self.public_key is not None:
            check = check_seal(outcome, seal, self.public_key)
            if check is not SignatureCheck.VALID:
                self.refused += 1
                logger.warning(
                    "refusing outcome %s of case %s: signature %s",
                    outcome.outcome_id,
                    outcome.case_id,
                    check.value,
                )
                return False
        fields: Mapping[str, bytes | str | int] = {
            "outcome": codec.encode(outcome),
            "kind": outcome.kind.value,
            "content": outcome.content or "",
            "query": outcome.query,
            "reviewer": outcome.reviewer,
            "policy_version": outcome.policy_version,
            "decided_at_ms": outcome.decided_at_ms,
            "signature": b"" if seal is None else seal.signature,
            "key_id": "" if seal is None else seal.key_id,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(outcome.case_id), mapping=fields)
            pipe.zadd(self.index_key, {outcome.case_id: outcome.decided_at_ms})
            await pipe.execute()
        return True

    async def get(self, case_id: str, *, verify: bool = False) -> Outcome | None:
        """The trusted answer of a case; None if it has none (pending, unresolved, unknown).

        With an outcomes public key (or ``verify``, which requires one) the stored seal is
        checked again: :class:`UntrustedOutcome` if it does not hold (Redis written by hand).
        """
        if verify and self.public_key is None:
            raise ConfigError(
                "no outcomes public key to verify with (RATIFIER_OUTCOMES_PUBLIC_KEY)"
            )
        raw, signature, key_id = await self.redis.hmget(
            self.key(case_id), ["outcome", "signature", "key_id"]
        )
        if raw is None:
            return None
        outcome = codec.decode_as(raw, Outcome)
        if self.public_key is not None:
            seal = OutcomeSeal((key_id or b"").decode(), signature or b"")
            check = check_seal(outcome, seal, self.public_key)
            if check is not SignatureCheck.VALID:
                raise UntrustedOutcome(case_id, check)
        return outcome

    async def case_ids(self) -> list[str]:
        """Every case with a trusted answer, oldest decision first."""
        return [raw.decode() for raw in await self.redis.zrange(self.index_key, 0, -1)]

    async def count(self) -> int:
        return int(await self.redis.zcard(self.index_key))
