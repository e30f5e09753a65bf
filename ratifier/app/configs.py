"""The components' typed configs, built from ``Settings`` (the environment) here and only here.

A component takes its small config, never the whole ``Settings``: what it depends on is in its
signature, and tests build exactly that.
"""

from __future__ import annotations

from ratifier.core.config import Settings
from ratifier.core.endpoints import Endpoints
from ratifier.core.topics import TopicNames
from ratifier.features.monitor.config import MonitorConfig
from ratifier.features.outcomes.config import OutcomesConfig
from ratifier.features.review.config import ReviewConfig
from ratifier.io.consume import PoisonHandling


def endpoints(settings: Settings) -> Endpoints:
    return Endpoints(
        kafka=settings.kafka_connection(),
        redis=settings.redis_connection(),
        topics=TopicNames.from_settings(settings),
        worker_id=settings.worker_id,
        max_record_bytes=settings.max_record_bytes,
    )


def review_config(settings: Settings) -> ReviewConfig:
    return ReviewConfig(
        endpoints=endpoints(settings),
        poison=PoisonHandling.from_settings(settings),
        claim_s=settings.review_claim_s,
        tokens_file=settings.review_tokens_file,
    )


def monitor_config(settings: Settings) -> MonitorConfig:
    return MonitorConfig(
        endpoints=endpoints(settings), poison=PoisonHandling.from_settings(settings)
    )


def outcomes_config(settings: Settings) -> OutcomesConfig:
    return OutcomesConfig(
        endpoints=endpoints(settings),
        poison=PoisonHandling.from_settings(settings),
        review=review_config(settings),
        signing_key=settings.outcomes_signing_key,
        public_key=settings.outcomes_public_key,
    )
