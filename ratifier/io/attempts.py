"""Resolve an escalation packet's earlier attempts to their full records.

Under a policy with ``earlier_attempts = "referenced"`` (docs/policy.md) a packet carries every
attempt but the last as a stub: ids, votes and failure, without the candidate's content and the
verdicts' reasons. Each stub names (``retry_decision_id``) the retry request it failed with,
which holds the attempt in full on ``<prefix>.decisions.retry``, keyed by case id. This reads
that topic from the beginning (committed records only) until it has found them all or it goes
quiet: a reviewer's page, not a hot path.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import cast

from aiokafka import ConsumerRecord

from ratifier.core.connection import KafkaConnection
from ratifier.core.errors import WireFormatError
from ratifier.core.models import AttemptRecord, EscalationPacket, RetryRequest
from ratifier.core.topics import TopicNames
from ratifier.io.client import read_from_beginning
from ratifier.schemas import codec

__all__ = ["full_attempts"]


async def full_attempts(
    kafka: KafkaConnection, topics: TopicNames, packet: EscalationPacket, *, idle_s: float = 2.0
) -> tuple[AttemptRecord, ...]:
    """The packet's attempts, each stub replaced by the attempt its retry request carries (its
    late verdicts stay the stub's: a retry request is published before them). A retry request
    not found within the topic's records is left a stub."""
    wanted = {a.retry_decision_id for a in packet.attempts if a.retry_decision_id and _is_stub(a)}
    found: dict[str, RetryRequest] = {}
    if wanted:
        key = packet.case_id.encode()
        topic = topics.retry
        # An async generator (typed as an iterator): closing it stops its consumer on a break.
        records = cast(
            "AsyncGenerator[ConsumerRecord[bytes, bytes], None]",
            read_from_beginning(kafka, [topic], client_id="ratifier-attempts", idle_s=idle_s),
        )
        async with contextlib.aclosing(records):
            async for record in records:
                if record.key != key or record.value is None:
                    continue
                try:
                    retry = codec.decode_as(record.value, RetryRequest)
                except WireFormatError:
                    continue
                if retry.decision_id in wanted:
                    found[retry.decision_id] = retry
                    if len(found) == len(wanted):
                        break
    return tuple(_resolved(a, found) for a in packet.attempts)


def _is_stub(attempt: AttemptRecord) -> bool:
    """Only stubs need fetching: a full earlier attempt (earlier_attempts = "full") has all."""
    candidate = attempt.candidate
    return not candidate.content and not candidate.query


def _resolved(attempt: AttemptRecord, found: dict[str, RetryRequest]) -> AttemptRecord:
    retry = found.get(attempt.retry_decision_id or "")
    if retry is None:
        return attempt
    return AttemptRecord(
        retry.candidate,
        retry.votes,
        retry.reason,
        attempt.late_verdicts,
        retry.decision_id,
        retry.rounds,  # a debate's earlier rounds, in full (docs/debate.md)
    )
