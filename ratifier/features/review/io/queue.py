"""The human review queue on Redis Streams: escalations in, reviewers' resolutions out.

Keys (``<p>`` is the topic prefix, so one Redis serves several deployments)::

    <p>:review:queue           stream, one entry per queued case; consumer group "reviewers",
                               one Redis consumer per reviewer id
    <p>:review:item:<case id>  hash: the escalation packet (Avro), its stream entry, state
    <p>:review:resolutions     stream: each resolution with its packet, read by the outcomes
                               runtime (consumer group "outcomes")

Why every state change is a Lua script: Redis runs a script atomically, so the check and the
change cannot interleave with another reviewer's. *Enqueue* creates the item only if none exists
(a redelivered escalation is queued once). *Claim* hands the reviewer their live claim again, or
else the oldest claim that timed out (XAUTOCLAIM), or else the next new entry (XREADGROUP ``>``):
a claim is a pending entry of the reviewer's consumer, and it times out after
``RATIFIER_REVIEW_CLAIM_S`` of idleness, when the next reviewer who claims takes it over.
*Resolve* checks the item (exists, not resolved, the claim) and then, in the same step, marks it
resolved, acknowledges and deletes the queue entry and appends the resolution to the
resolutions stream: of two reviewers resolving one item at once, exactly one succeeds and exactly
one resolution is written. A refused action changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ratifier.core.errors import AlreadyResolved, StaleClaim, UnknownItem, UnknownReviewer
from ratifier.core.models import EscalationPacket, now_ms
from ratifier.core.tokens import Reviewers
from ratifier.features.review.config import ReviewConfig
from ratifier.features.review.core import Action, Resolution, validate_resolution
from ratifier.schemas import codec

REVIEWERS_GROUP: Final = "reviewers"
OUTCOMES_GROUP: Final = "outcomes"

# KEYS: item, queue. ARGV: case id, packet, escalated_at_ms. -> 1 queued, 0 known already.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local entry = redis.call('XADD', KEYS[2], '*', 'case_id', ARGV[1])
redis.call('HSET', KEYS[1], 'packet', ARGV[2], 'entry', entry, 'state', 'queued',
           'escalated_at_ms', ARGV[3])
return 1
"""

# KEYS: queue. ARGV: reviewer, claim timeout ms. -> case id, or false when nothing is queued.
_CLAIM = """
local mine = redis.call('XPENDING', KEYS[1], 'reviewers', 'IDLE', 0, '-', '+', 10, ARGV[1])
for _, p in ipairs(mine) do
  if tonumber(p[3]) < tonumber(ARGV[2]) then
    local e = redis.call('XRANGE', KEYS[1], p[1], p[1])
    if #e == 1 then return e[1][2][2] end
  end
end
local auto = redis.call('XAUTOCLAIM', KEYS[1], 'reviewers', ARGV[1], ARGV[2], '0-0', 'COUNT', 1)
for _, e in ipairs(auto[2]) do
  if e and e[2] then return e[2][2] end
end
local new = redis.call('XREADGROUP', 'GROUP', 'reviewers', ARGV[1], 'COUNT', 1,
                       'STREAMS', KEYS[1], '>')
if new and new[1] and #new[1][2] > 0 then return new[1][2][1][2][2] end
return false
"""

# KEYS: item, queue, resolutions. ARGV: reviewer, claim timeout ms, require claim (1/0),
# case id, action, candidate id, text, note, resolved_at_ms.
# -> {'OK'} | {'UNKNOWN'} | {'RESOLVED', by} | {'STALE', why}
_RESOLVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNKNOWN'} end
local item = redis.call('HMGET', KEYS[1], 'state', 'entry', 'resolved_by', 'packet')
if item[1] == 'resolved' then return {'RESOLVED', item[3]} end
local entry = item[2]
local p = redis.call('XPENDING', KEYS[2], 'reviewers', entry, entry, 1)
if #p == 1 then
  local owner, idle = p[1][2], tonumber(p[1][3])
  if owner ~= ARGV[1] then
    if idle < tonumber(ARGV[2]) then return {'STALE', 'claimed by ' .. owner} end
    if ARGV[3] == '1' then return {'STALE', 'your claim is not held'} end
  elseif idle >= tonumber(ARGV[2]) and ARGV[3] == '1' then
    return {'STALE', 'your claim timed out'}
  end
elseif ARGV[3] == '1' then
  return {'STALE', 'not claimed: claim it first'}
end
redis.call('HSET', KEYS[1], 'state', 'resolved', 'resolved_by', ARGV[1], 'action', ARGV[5],
           'resolved_at_ms', ARGV[9])
redis.call('XACK', KEYS[2], 'reviewers', entry)
redis.call('XDEL', KEYS[2], entry)
redis.call('XADD', KEYS[3], '*', 'case_id', ARGV[4], 'action', ARGV[5], 'reviewer', ARGV[1],
           'candidate_id', ARGV[6], 'text', ARGV[7], 'note', ARGV[8], 'resolved_at_ms', ARGV[9],
           'packet', item[4])
return {'OK'}
"""


@dataclass(frozen=True, slots=True)
class QueuedItem:
    case_id: str
    packet: EscalationPacket
    escalated_at_ms: int
    state: str  # queued | resolved
    claimed_by: str | None  # the reviewer holding a live claim
    resolved_by: str | None
    action: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    length: int  # items waiting for a resolution (claimed or not)
    oldest_escalated_at_ms: int | None

    def oldest_age_s(self, now_ms_: int | None = None) -> float:
        if self.oldest_escalated_at_ms is None:
            return 0.0
        return max(0.0, ((now_ms_ or now_ms()) - self.oldest_escalated_at_ms) / 1000)


@dataclass(frozen=True, slots=True)
class StoredResolution:
    """A resolution as the resolutions stream holds it, with the packet it resolves."""

    entry_id: bytes
    resolution: Resolution
    packet: EscalationPacket


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


class ReviewQueue:
    """The queue of one topic prefix. ``reviewers`` decides who may claim and resolve."""

    def __init__(self, redis: Redis, config: ReviewConfig, reviewers: Reviewers | None) -> None:
        # Any: redis-py types replies as bytes | str (decode_responses is a runtime flag); the
        # client of connect() always answers bytes.
        self.redis: Any = redis
        self.reviewers = reviewers
        self.claim_ms = int(config.claim_s * 1000)
        base = f"{config.key_prefix}review:"
        self.queue_key = f"{base}queue"
        self.resolutions_key = f"{base}resolutions"
        self._item_base = f"{base}item:"
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._resolve = redis.register_script(_RESOLVE)

    def item_key(self, case_id: str) -> str:
        return f"{self._item_base}{case_id}"

    async def ensure_groups(self) -> None:
        """Create the streams' consumer groups (idempotent)."""
        for key, group in (
            (self.queue_key, REVIEWERS_GROUP),
            (self.resolutions_key, OUTCOMES_GROUP),
        ):
            try:
                await self.redis.xgroup_create(key, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- feeding -------------------------------------------------------------------------------

    async def enqueue(self, packet: EscalationPacket) -> bool:
        """Queue an escalation; False when its case is queued (or resolved) already."""
        queued = await self._enqueue(
            keys=[self.item_key(packet.case_id), self.queue_key],
            args=[packet.case_id, codec.encode(packet), packet.decided_at_ms],
        )
        return bool(queued)

    # -- reading -------------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        length = await self.redis.xlen(self.queue_key)
        oldest = None
        first = await self.redis.xrange(self.queue_key, count=1)
        if first:
            case_id = first[0][1][b"case_id"].decode()
            raw = await self.redis.hget(self.item_key(case_id), "escalated_at_ms")
            oldest = int(raw) if raw is not None else int(first[0][0].split(b"-")[0])
        return QueueStats(length, oldest)

    async def waiting(self, limit: int = 100) -> list[QueuedItem]:
        """The queued items, oldest first (up to ``limit``), with who holds a live claim."""
        entries = await self.redis.xrange(self.queue_key, count=limit)
        holders = await self._claim_holders()
        items = []
        for entry_id, fields in entries:
            item = await self.get(fields[b"case_id"].decode())
            if item is not None:
                items.append(_with_claim(item, holders.get(entry_id)))
        return items

    async def get(self, case_id: str) -> QueuedItem | None:
        fields = await self.redis.hgetall(self.item_key(case_id))
        if not fields:
            return None
        claimed_by = None
        if fields.get(b"state") == b"queued":
            holders = await self._claim_holders(fields[b"entry"])
            claimed_by = holders.get(fields[b"entry"])
        return QueuedItem(
            case_id=case_id,
            packet=codec.decode_as(fields[b"packet"], EscalationPacket),
            escalated_at_ms=int(fields[b"escalated_at_ms"]),
            state=fields[b"state"].decode(),
            claimed_by=claimed_by,
            resolved_by=_text(fields.get(b"resolved_by")),
            action=_text(fields.get(b"action")),
        )

    async def require(self, case_id: str) -> QueuedItem:
        item = await self.get(case_id)
        if item is None:
            raise UnknownItem(f"no review item for case {case_id!r}")
        return item

    async def _claim_holders(self, entry: bytes | None = None) -> dict[bytes, str]:
        """Entry id -> reviewer, for live claims (of one entry, or of the first 1000)."""
        start, end = (entry, entry) if entry is not None else ("-", "+")
        pending = await self.redis.xpending_range(
            self.queue_key, REVIEWERS_GROUP, min=start, max=end, count=1000
        )
        return {
            p["message_id"]: p["consumer"].decode()
            for p in pending
            if p["time_since_delivered"] < self.claim_ms
        }

    # -- reviewers' actions --------------------------------------------------------------------

    def _reviewer(self, reviewer: str) -> str:
        if self.reviewers is None:
            raise UnknownReviewer("no reviewer list is configured (RATIFIER_REVIEW_TOKENS_FILE)")
        return self.reviewers.check(reviewer)

    async def claim(self, reviewer: str) -> QueuedItem | None:
        """The reviewer's item: their live claim, a timed-out one, or the next; None if empty."""
        self._reviewer(reviewer)
        case_id = await self._claim(keys=[self.queue_key], args=[reviewer, self.claim_ms])
        if not case_id:
            return None
        return await self.require(case_id.decode())

    async def resolve(
        self,
        case_id: str,
        reviewer: str,
        action: Action | str,
        *,
        candidate_id: str | None = None,
        text: str | None = None,
        note: str | None = None,
        require_claim: bool = True,
    ) -> Resolution:
        """Resolve an item; ReviewError (and nothing changed) if it may not be resolved.

        With ``require_claim`` (the web page) the reviewer must hold a live claim on it; without
        (the CLI), an item nobody else holds a live claim on may be resolved directly.
        """
        self._reviewer(reviewer)
        item = await self.require(case_id)
        if item.state == "resolved":
            raise AlreadyResolved(f"case {case_id} was resolved already by {item.resolved_by}")
        action, candidate_id, text, note = validate_resolution(
            item.packet, action, candidate_id=candidate_id, text=text, note=note
        )
        resolution = Resolution(case_id, action, reviewer, now_ms(), candidate_id, text, note)
        answer = await self._resolve(
            keys=[self.item_key(case_id), self.queue_key, self.resolutions_key],
            args=[
                reviewer,
                self.claim_ms,
                "1" if require_claim else "0",
                case_id,
                action.value,
                candidate_id or "",
                text or "",
                note or "",
                resolution.resolved_at_ms,
            ],
        )
        status = answer[0].decode()
        if status == "OK":
            return resolution
        if status == "UNKNOWN":
            raise UnknownItem(f"no review item for case {case_id!r}")
        if status == "RESOLVED":
            raise AlreadyResolved(f"case {case_id} was resolved already by {answer[1].decode()}")
        raise StaleClaim(f"case {case_id}: {answer[1].decode()}")

    # -- the outcomes runtime's side -----------------------------------------------------------

    async def read_resolutions(
        self, consumer: str, *, pending: bool, count: int = 64, block_ms: int | None = None
    ) -> list[StoredResolution]:
        """Resolutions for the outcomes runtime: its unacknowledged ones, or new ones."""
        answer = await self.redis.xreadgroup(
            OUTCOMES_GROUP,
            consumer,
            {self.resolutions_key: "0" if pending else ">"},
            count=count,
            block=block_ms,
        )
        stored = []
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                if fields:  # a pending entry deleted meanwhile comes back without fields
                    stored.append(_stored_resolution(entry_id, fields))
        return stored

    async def acknowledge(self, entry_ids: Sequence[bytes]) -> None:
        if entry_ids:
            await self.redis.xack(self.resolutions_key, OUTCOMES_GROUP, *entry_ids)


def _with_claim(item: QueuedItem, holder: str | None) -> QueuedItem:
    return QueuedItem(
        item.case_id,
        item.packet,
        item.escalated_at_ms,
        item.state,
        holder,
        item.resolved_by,
        item.action,
    )


def _stored_resolution(entry_id: bytes, fields: dict[bytes, Any]) -> StoredResolution:
    def optional(name: bytes) -> str | None:
        return fields[name].decode() or None

    resolution = Resolution(
        case_id=fields[b"case_id"].decode(),
        action=Action(fields[b"action"].decode()),
        reviewer=fields[b"reviewer"].decode(),
        resolved_at_ms=int(fields[b"resolved_at_ms"]),
        candidate_id=optional(b"candidate_id"),
        text=optional(b"text"),
        note=optional(b"note"),
    )
    packet = codec.decode_as(fields[b"packet"], EscalationPacket)
    return StoredResolution(entry_id, resolution, packet)
