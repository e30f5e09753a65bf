"""The Redis client of the read models (review queue, trusted answers), from :class:`Settings`."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from ratifier.core.config import Settings
from ratifier.core.connection import RedisConnection
from ratifier.core.topics import TopicNames


def connect(source: RedisConnection | Settings) -> Redis:
    """A client of ``RATIFIER_REDIS_URL``; bytes in, bytes out (Avro values are not text).

    ``rediss://`` connects over TLS; the ACL user and password of ``RATIFIER_REDIS_USERNAME``
    and ``RATIFIER_REDIS_PASSWORD`` (or its ``_FILE``) win over any in the URL.
    """
    connection = source if isinstance(source, RedisConnection) else source.redis_connection()
    # A blocking pool: a worker with more records in flight than the pool's 100 connections
    # waits for one (up to 20 s) instead of failing with "Too many connections".
    options: dict[str, Any] = {"decode_responses": False}
    if connection.username:
        options["username"] = connection.username
    if connection.password:
        options["password"] = connection.password.reveal()
    if connection.ssl_cafile is not None:
        options["ssl_ca_certs"] = str(connection.ssl_cafile)
    return Redis.from_pool(BlockingConnectionPool.from_url(connection.url, **options))


def key_prefix(settings: Settings) -> str:
    """Every key Ratifier writes starts with the topic prefix (``TopicNames.key_prefix``)."""
    return TopicNames.from_settings(settings).key_prefix
