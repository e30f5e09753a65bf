"""Reading ``<prefix>.outcomes``: every case's one final outcome, as committed (read_committed).

The outcomes writer (``ratifier.features.outcomes.runtime``) is the topic's only writer; a record
that is not an outcome is logged and skipped, as the trusted store's projection does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Outcome
from ratifier.core.topics import TopicNames
from ratifier.io.client import read_from_beginning
from ratifier.schemas import codec

__all__ = ["committed_outcomes"]

logger = logging.getLogger(__name__)


async def committed_outcomes(
    settings: Settings, *, idle_s: float | None = 2.0, client_id: str = "ratifier-outcomes-reader"
) -> AsyncIterator[Outcome]:
    """Outcomes from the beginning; with ``idle_s``, until none came that long (else for good)."""
    names = TopicNames.from_settings(settings)
    reader = read_from_beginning(settings, [names.outcomes], client_id=client_id, idle_s=idle_s)
    async for record in reader:
        try:
            yield codec.decode_as(record.value or b"", Outcome)
        except WireFormatError as exc:
            logger.warning("offset %d of %s is no outcome: %s", record.offset, names.outcomes, exc)
