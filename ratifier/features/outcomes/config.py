"""What the outcomes runtime needs to know, built once from ``Settings`` by the app
(``ratifier.app.configs.outcomes_config``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratifier.core.endpoints import Endpoints
from ratifier.features.review.config import ReviewConfig
from ratifier.io.consume import PoisonHandling


@dataclass(frozen=True, slots=True)
class OutcomesConfig:
    endpoints: Endpoints
    poison: PoisonHandling  # the brake on foreign records on the outcomes topic (always skipped)
    review: ReviewConfig  # the review queue whose resolutions become outcomes
    signing_key: Path | None  # seals outcomes when set (RATIFIER_OUTCOMES_SIGNING_KEY)
    public_key: str  # the trusted store lets in only outcomes it sealed, when set
