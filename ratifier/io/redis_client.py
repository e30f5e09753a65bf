"""The Redis client of the read models (review queue, trusted answers), from :class:`Settings`."""

from __future__ import annotations

from redis.asyncio import Redis

from ratifier.core.config import Settings


def connect(settings: Settings) -> Redis:
    """A client of ``RATIFIER_REDIS_URL``; bytes in, bytes out (Avro values are not text)."""
    return Redis.from_url(settings.redis_url, decode_responses=False)


def key_prefix(settings: Settings) -> str:
    """Every key Ratifier writes starts with the topic prefix: one Redis serves many prefixes."""
    return f"{settings.topic_prefix}:"
