"""Redis read models kept by the monitor: each case's history, a validator scoreboard, alarms.

Keys, under ``<topic prefix>:`` (:func:`ratifier.io.redis_client.key_prefix`):

* ``case:<case id>`` (hash): one field per thing that happened, ``attempt:<n>:candidate``,
  ``attempt:<n>:verdict:<validator>``, ``attempt:<n>:decision``, each a JSON document. Writing a
  record twice writes the same field with the same value, so replays change nothing. The status
  (voting, retrying, passed, escalated) is derived when read (:func:`case_view`).
* ``scoreboard`` (hash): ``<policy>|<validator>|<stat>|<category>`` -> count, stat being a vote,
  ``timeout``, ``error`` or ``latency_ms`` (a sum). Counts are increments, which a replay would
  repeat, so each batch's increments are applied by one Lua script together with the offsets
  they came from (``offsets`` hash, ``<topic>:<partition>`` -> next offset): a batch whose
  offsets are already recorded is skipped. Replaying the topics gives the same counts.
* ``alarms`` (hash): alarm key -> the JSON of the alert that raised it; removed when cleared.
* ``figures`` (hash): policy -> the JSON of its latest windowed figures.

The monitor writes; :class:`ReadModels` also reads them, for ``Client.case``,
``ratifier case`` and ``ratifier scoreboard``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.connection import RedisConnection
from ratifier.core.models import (
    Alert,
    Candidate,
    Decision,
    PassDecision,
    RetryRequest,
    Verdict,
)
from ratifier.io.redis_client import connect, key_prefix

__all__ = [
    "AttemptView",
    "CaseView",
    "OffsetGroup",
    "ReadModels",
    "ScoreRow",
    "case_fields",
    "case_view",
    "namespace",
]

CASE_TTL_S = 7 * 24 * 3600  # a case's history is kept a week after its last record
_CONTENT_EXCERPT = 500

# Applies each group's increments once: only if its offsets are not yet recorded (see above).
_APPLY_ONCE = """
local groups = cjson.decode(ARGV[1])
local applied = 0
for _, g in ipairs(groups) do
  local done = tonumber(redis.call('HGET', KEYS[1], g.tp) or '0')
  if done <= g.first then
    for name, amount in pairs(g.incr) do
      redis.call('HINCRBY', KEYS[2], name, amount)
    end
    redis.call('HSET', KEYS[1], g.tp, g.next)
    applied = applied + 1
  end
end
return applied
"""


def namespace(settings: Settings) -> str:
    return key_prefix(settings)


def _json(value: Any) -> bytes:
    # Sorted keys: the same record always writes the same bytes (idempotent replays).
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# --- case documents ------------------------------------------------------------------------------


def case_fields(record: Candidate | Verdict | Decision) -> dict[str, bytes]:
    """The fields of the case's hash a record sets (pure; the same record, the same fields)."""
    if isinstance(record, Candidate):
        return {
            f"attempt:{record.attempt}:candidate": _json(
                {
                    "candidate_id": record.candidate_id,
                    "policy": record.policy,
                    "category": record.category,
                    "producer": record.producer,
                    "query": record.query[:_CONTENT_EXCERPT],
                    "content": record.content[:_CONTENT_EXCERPT],
                    "produced_at_ms": record.produced_at_ms,
                }
            )
        }
    if isinstance(record, Verdict):
        return {
            f"attempt:{record.attempt}:verdict:{record.validator_id}": _json(
                {
                    "vote": record.vote.value,
                    "confidence": record.confidence,
                    "latency_ms": record.latency_ms,
                    "reasons": [r.code for r in record.reasons],
                    "produced_at_ms": record.produced_at_ms,
                }
            )
        }
    document: dict[str, Any] = {
        "decision_id": record.decision_id,
        "policy": record.policy,
        "policy_version": record.policy_version,
        "decided_at_ms": record.decided_at_ms,
    }
    if isinstance(record, PassDecision):
        document |= {
            "kind": "pass",
            "outcome": record.outcome.value,
            "confidence": record.confidence,
            "votes": len(record.votes),
        }
    elif isinstance(record, RetryRequest):
        document |= {"kind": "retry", "reason": record.reason.value, "votes": len(record.votes)}
    else:
        document |= {
            "kind": "escalate",
            "outcome": record.outcome.value,
            "reason": record.reason.value,
            "attempts": len(record.attempts),
        }
    return {f"attempt:{record.attempt}:decision": _json(document)}


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempt: int
    candidate: Mapping[str, Any] | None
    verdicts: Mapping[str, Mapping[str, Any]]  # validator -> verdict
    decision: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class CaseView:
    """What happened to a case, as the read model holds it."""

    case_id: str
    status: str  # voting, retrying, passed, escalated
    outcome: str | None  # confirmed, corrected, unresolved; None while open
    policy: str | None
    policy_version: str | None
    attempts: tuple[AttemptView, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def case_view(case_id: str, fields: Mapping[bytes | str, bytes | str]) -> CaseView | None:
    """Build the view from the case hash's fields (pure); None for an unknown case."""
    if not fields:
        return None
    attempts: dict[int, dict[str, Any]] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        parts = name.split(":")
        if parts[0] != "attempt" or len(parts) < 3:
            continue
        slot = attempts.setdefault(int(parts[1]), {"verdicts": {}})
        value = orjson.loads(raw_value)
        if parts[2] == "verdict" and len(parts) == 4:
            slot["verdicts"][parts[3]] = value
        elif parts[2] in ("candidate", "decision"):
            slot[parts[2]] = value
    views = tuple(
        AttemptView(
            number,
            slot.get("candidate"),
            dict(sorted(slot["verdicts"].items())),
            slot.get("decision"),
        )
        for number, slot in sorted(attempts.items())
    )
    decisions = [v.decision for v in views if v.decision is not None]
    final = next((d for d in decisions if d["kind"] in ("pass", "escalate")), None)
    if final is not None:
        status = "passed" if final["kind"] == "pass" else "escalated"
    elif decisions and max(v.attempt for v in views if v.decision) >= views[-1].attempt:
        status = "retrying"  # the last attempt failed; the next one has not arrived yet
    else:
        status = "voting"
    latest = decisions[-1] if decisions else None
    candidate = next((v.candidate for v in reversed(views) if v.candidate), None)
    return CaseView(
        case_id=case_id,
        status=status,
        outcome=final.get("outcome") if final else None,
        policy=(latest or candidate or {}).get("policy"),
        policy_version=latest["policy_version"] if latest else None,
        attempts=views,
    )


# --- scoreboard ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreRow:
    policy: str
    validator: str
    category: str
    accept: int
    reject: int
    abstain: int
    timeouts: int
    errors: int
    latency_ms_sum: int

    @property
    def verdicts(self) -> int:
        return self.accept + self.reject + self.abstain

    @property
    def rejection_ratio(self) -> float:
        return self.reject / self.verdicts if self.verdicts else float("nan")

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_sum / self.verdicts if self.verdicts else float("nan")


def score_field(policy: str, validator: str, category: str, stat: str) -> str:
    # Policy names and validator ids hold no "|" (policy.py checks them); categories are free
    # text, so the category goes last and keeps any "|" of its own.
    return f"{policy}|{validator}|{stat}|{category}"


def score_rows(fields: Mapping[bytes | str, bytes | str]) -> list[ScoreRow]:
    totals: dict[tuple[str, str, str], Counter[str]] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        policy, validator, stat, category = name.split("|", 3)
        totals.setdefault((policy, validator, category), Counter())[stat] += int(raw_value)
    return [
        ScoreRow(
            policy,
            validator,
            category,
            accept=c["ACCEPT"],
            reject=c["REJECT"],
            abstain=c["ABSTAIN"],
            timeouts=c["timeout"],
            errors=c["error"],
            latency_ms_sum=c["latency_ms"],
        )
        for (policy, validator, category), c in sorted(totals.items())
    ]


@dataclass(slots=True)
class OffsetGroup:
    """One input partition's fresh records in a batch: their increments, applied once."""

    topic: str
    partition: int
    first: int  # offset of the first record not yet applied
    next: int  # offset after the last record
    increments: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return f"{self.topic}:{self.partition}"


# --- the store -----------------------------------------------------------------------------------


class ReadModels:
    """Reads and writes the read models in Redis. ``async with`` it, or ``aclose()`` it."""

    def __init__(
        self, redis: RedisConnection, key_prefix: str, *, case_ttl_s: int = CASE_TTL_S
    ) -> None:
        self.url = redis.masked_url
        self.ns = key_prefix
        self.case_ttl_s = case_ttl_s
        self._redis: Redis = connect(redis)
        self._apply_once = self._redis.register_script(_APPLY_ONCE)

    @classmethod
    def from_settings(cls, settings: Settings, *, case_ttl_s: int = CASE_TTL_S) -> ReadModels:
        return cls(settings.redis_connection(), namespace(settings), case_ttl_s=case_ttl_s)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def __aenter__(self) -> ReadModels:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    # -- writes (the monitor) --------------------------------------------------------------

    async def write_cases(self, cases: Mapping[str, Mapping[str, bytes]]) -> None:
        if not cases:
            return
        pipe = self._redis.pipeline(transaction=False)
        for case_id, fields in cases.items():
            key = f"{self.ns}case:{case_id}"
            pipe.hset(key, mapping=_mapping(fields))
            pipe.expire(key, self.case_ttl_s)
        await pipe.execute()

    async def apply_counts(self, groups: Iterable[OffsetGroup]) -> int:
        """Add each group's increments to the scoreboard unless its offsets are recorded."""
        payload = [
            {"tp": g.name, "first": g.first, "next": g.next, "incr": dict(g.increments)}
            for g in groups
        ]
        if not payload:
            return 0
        applied = await self._apply_once(
            keys=[f"{self.ns}offsets", f"{self.ns}scoreboard"], args=[orjson.dumps(payload)]
        )
        return int(applied)

    async def applied_offsets(self) -> dict[str, int]:
        raw = await self._redis.hgetall(f"{self.ns}offsets")
        return {_text(k): int(v) for k, v in raw.items()}

    async def set_alarms(self, raised: Iterable[tuple[str, Alert]], cleared: Iterable[str]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for key, alert in raised:
            pipe.hset(f"{self.ns}alarms", key, _json(dataclasses.asdict(alert)))
        for key in cleared:
            pipe.hdel(f"{self.ns}alarms", key)
        await pipe.execute()

    async def set_figures(self, figures: Mapping[str, Mapping[str, Any]]) -> None:
        if figures:
            values = {p: _json(f) for p, f in figures.items()}
            await self._redis.hset(f"{self.ns}figures", mapping=_mapping(values))

    async def delete_all(self) -> None:
        """Remove every read-model key of this prefix (e.g. to rebuild them from the topics)."""
        keys = [f"{self.ns}{name}" for name in ("scoreboard", "offsets", "alarms", "figures")]
        keys += [key async for key in self._redis.scan_iter(match=f"{self.ns}case:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await self._redis.delete(*keys[start : start + 1000])

    # -- reads -----------------------------------------------------------------------------

    async def case(self, case_id: str) -> CaseView | None:
        return case_view(case_id, await self._redis.hgetall(f"{self.ns}case:{case_id}"))

    async def scoreboard(self) -> list[ScoreRow]:
        return score_rows(await self._redis.hgetall(f"{self.ns}scoreboard"))

    async def alarms(self) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(f"{self.ns}alarms")
        return {_text(k): orjson.loads(v) for k, v in sorted(raw.items())}

    async def figures(self) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(f"{self.ns}figures")
        return {_text(k): orjson.loads(v) for k, v in sorted(raw.items())}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_Field = bytes | bytearray | memoryview | str | int | float


def _mapping(fields: Mapping[str, bytes]) -> Mapping[_Field, _Field]:
    # redis-py's hset takes a Mapping invariant in its key type: widen it for the type checker.
    return dict(fields.items())
