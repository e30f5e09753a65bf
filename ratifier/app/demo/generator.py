"""The demo's generator: answers a retry with a revised candidate that is more often right.

Ground truth travels in candidate metadata (``truth``: accept/reject) so simulated validators
and the summary can score decisions; a real generator would call a model with the dissent.
A case may pin its revisions' truth with metadata ``next_truth`` (used to script escalations).
"""

from __future__ import annotations

import hashlib

from ratifier.core.models import RetryRequest
from ratifier.runtimes.generator import Revision


def chance(*parts: object) -> float:
    """A reproducible number in [0, 1) derived from ``parts`` (same inputs, same draw)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class DemoGenerator:
    version = "demo-1"

    def __init__(self, good_rate: float = 0.9) -> None:
        self.good_rate = good_rate

    async def __call__(self, retry: RetryRequest) -> Revision:
        codes = sorted({reason.code for verdict in retry.dissent for reason in verdict.reasons})
        truth = retry.candidate.metadata.get("next_truth")
        if truth is None:
            good = chance("retry", retry.case_id, retry.next_attempt) < self.good_rate
            truth = "accept" if good else "reject"
        original = retry.candidate.content.split(" [revision")[0]
        addressed = ", ".join(codes) or retry.reason.value
        content = f"{original} [revision {retry.next_attempt}: addresses {addressed}]"
        return Revision(content, {"truth": truth})


improve = DemoGenerator()
