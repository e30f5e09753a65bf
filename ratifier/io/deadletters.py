"""Read the dead-letter topic, and send dead-lettered records again once their cause is fixed.

A dead letter keeps the original bytes, where they came from (topic, partition, offset), a
reason code and a sentence. Most reasons are fixable upstream: a policy that was not loaded, a
validator the policy did not name yet. After the fix, :func:`replay` produces the originals
again to the topic they came from, keyed by their case id, as their producer did. Replaying is
safe to repeat: the tally counts a candidate or verdict it has already counted once.

Records that cannot be replayed are counted, not sent: undecodable bytes (``MALFORMED``) and
``TOO_LARGE`` ones, whose dead letter keeps only an excerpt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Candidate, DeadLetter, DeadLetterReason, Verdict
from ratifier.core.topics import TopicNames
from ratifier.io.client import read_from_beginning
from ratifier.io.kafka import make_producer
from ratifier.schemas import codec

# Reasons whose dead letter cannot hold a record worth sending again.
NOT_REPLAYABLE = frozenset({DeadLetterReason.MALFORMED, DeadLetterReason.TOO_LARGE})


async def dead_letters(
    settings: Settings, *, idle_s: float | None = 2.0
) -> AsyncIterator[DeadLetter]:
    """The dead letters on ``<prefix>.deadletter``; with ``idle_s``, until none came that long."""
    names = TopicNames.from_settings(settings)
    reader = read_from_beginning(
        settings, [names.deadletter], client_id="ratifier-deadletters", idle_s=idle_s
    )
    async for record in reader:
        yield codec.decode_as(record.value or b"", DeadLetter)


def original_record(letter: DeadLetter) -> Candidate | Verdict | None:
    """The dead-lettered candidate or verdict, or None where its bytes are not one."""
    if letter.reason in NOT_REPLAYABLE:
        return None
    try:
        record = codec.decode(letter.original)
    except WireFormatError:
        return None
    return record if isinstance(record, Candidate | Verdict) else None


@dataclass
class ReplayReport:
    sent: int = 0
    not_replayable: int = 0  # matched, but undecodable or kept as an excerpt only
    by_reason: dict[str, int] = field(default_factory=dict)


async def replay(
    settings: Settings,
    reasons: Collection[DeadLetterReason],
    *,
    dry_run: bool = False,
    limit: int | None = None,
) -> ReplayReport:
    """Send every dead-lettered record with one of ``reasons`` again to its source topic."""
    names = TopicNames.from_settings(settings)
    sources = {names.candidates, names.verdicts}
    report = ReplayReport()
    producer = make_producer(settings, client_id="ratifier-deadletters-replay")
    await producer.start()
    try:
        async for letter in dead_letters(settings):
            if letter.reason not in reasons or letter.source_topic not in sources:
                continue
            if limit is not None and report.sent >= limit:
                break
            record = original_record(letter)
            if record is None:
                report.not_replayable += 1
                continue
            if not dry_run:
                await producer.send_and_wait(
                    letter.source_topic, letter.original, key=record.case_id.encode()
                )
            report.sent += 1
            report.by_reason[letter.reason.value] = report.by_reason.get(letter.reason.value, 0) + 1
    finally:
        await producer.stop()
    return report
