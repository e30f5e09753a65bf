"""Reviewer page sessions in Redis: a login trades the reviewer's token for a random session id.

The browser keeps only the session id (cookie), never the token; Redis keeps only the id's
SHA-256 (``<prefix>:review:session:<hex>`` -> reviewer id, with a TTL), so neither a stolen
cookie jar nor a Redis dump yields a token. Sessions outlive a restart of the page and are
shared by every replica of it; logging out deletes one.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Final

from redis.asyncio import Redis

from ratifier.features.review.config import ReviewConfig

SESSION_TTL_S: Final = 12 * 3600  # a working day: then log in again


class ReviewSessions:
    def __init__(self, redis: Redis, config: ReviewConfig, ttl_s: int = SESSION_TTL_S) -> None:
        self.redis: Any = redis
        self.ttl_s = ttl_s
        self._base = f"{config.key_prefix}review:session:"

    def _key(self, session_id: str) -> str:
        return self._base + hashlib.sha256(session_id.encode()).hexdigest()

    async def open(self, reviewer: str) -> str:
        """A new session of ``reviewer``; returns its id (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        await self.redis.set(self._key(session_id), reviewer.encode(), ex=self.ttl_s)
        return session_id

    async def reviewer(self, session_id: str) -> str | None:
        """Whose session this is; None for an unknown or expired one."""
        raw = await self.redis.get(self._key(session_id))
        return None if raw is None else bytes(raw).decode()

    async def close(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))
