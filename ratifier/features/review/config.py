"""What the review's components need to know, built once from ``Settings`` by the app
(``ratifier.app.configs.review_config``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratifier.core.endpoints import Endpoints
from ratifier.io.consume import PoisonHandling


@dataclass(frozen=True, slots=True)
class ReviewConfig:
    endpoints: Endpoints
    poison: PoisonHandling  # the feeder's undecodable escalations (RATIFIER_POISON)
    claim_s: float  # a claim times out after this long idle (RATIFIER_REVIEW_CLAIM_S)
    tokens_file: Path | None  # the reviewer list (RATIFIER_REVIEW_TOKENS_FILE)

    @property
    def key_prefix(self) -> str:
        return self.endpoints.topics.key_prefix
