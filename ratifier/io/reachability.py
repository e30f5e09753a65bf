"""Is Kafka there (with the topics a command reads or writes), is Redis there?

Checked once when a command or worker starts (``ratifier.app.cli.reach``), so a wrong address,
a stopped stack or a wrong topic prefix is one line naming the address, its setting and what to
check, within ``RATIFIER_CONNECT_TIMEOUT_S``, rather than a traceback or a wait of minutes.
:func:`unreachable_in` gives the same line for a connection error raised later on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from aiokafka.errors import KafkaConnectionError, KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ratifier.core.config import ENV_PREFIX, Settings
from ratifier.core.errors import TopicsMissing, Unreachable
from ratifier.io.admin import admin_client
from ratifier.io.kafka import make_consumer
from ratifier.io.redis_client import connect

__all__ = ["kafka_unreachable", "redis_unreachable", "require_kafka", "require_redis"]

KAFKA_CHECK = "is the broker running (`ratifier stack status`), and is the address right?"
REDIS_CHECK = (
    "is redis-server running (`ratifier stack status`), and is the URL (host, port, password) "
    "right?"
)


def kafka_unreachable(settings: Settings) -> Unreachable:
    return Unreachable(
        "Kafka",
        settings.bootstrap_servers,
        f"{ENV_PREFIX}BOOTSTRAP_SERVERS",
        settings.connect_timeout_s,
        KAFKA_CHECK,
    )


def redis_unreachable(settings: Settings) -> Unreachable:
    return Unreachable(
        "Redis",
        settings.redis_url_masked,
        f"{ENV_PREFIX}REDIS_URL",
        settings.connect_timeout_s,
        REDIS_CHECK,
    )


async def require_kafka(settings: Settings, topics: Iterable[str] = ()) -> None:
    """Raise :class:`Unreachable` unless a broker answers within the connect timeout, and
    :class:`TopicsMissing` if one of ``topics`` does not exist."""
    wanted = list(topics)
    consumer = make_consumer(settings, group_id=None, client_id="ratifier-reachability")
    try:
        # aiokafka logs each failed connection as an error of its own; the one line is ours.
        async with _silenced("aiokafka"), asyncio.timeout(settings.connect_timeout_s):
            await consumer.start()
            # A metadata request: the broker answers, not merely accepts connections.
            existing = await consumer.topics()
    except KafkaError as exc:
        # Refused at once (a refused connection, TLS, credentials): the admin client's
        # bootstrap says which, in its one line (e.g. "... refused the credentials").
        await _explain(settings)
        raise kafka_unreachable(settings) from exc
    except (TimeoutError, OSError) as exc:
        raise kafka_unreachable(settings) from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    missing = [topic for topic in wanted if topic not in existing]
    if missing:
        raise TopicsMissing(missing, settings.bootstrap_servers)


async def _explain(settings: Settings) -> None:
    """Raise the admin client's own one-line error for a broker that refuses this client (it
    collects aiokafka's logged causes itself, so the logger is not silenced here)."""
    async with asyncio.timeout(settings.connect_timeout_s), admin_client(settings):
        pass


async def require_redis(settings: Settings) -> None:
    """Raise :class:`Unreachable` unless Redis answers a PING within the connect timeout."""
    redis = connect(settings)
    try:
        async with asyncio.timeout(settings.connect_timeout_s):
            await redis.ping()
    except (TimeoutError, RedisError, OSError) as exc:
        raise redis_unreachable(settings) from exc
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


@contextlib.asynccontextmanager
async def _silenced(logger_name: str) -> AsyncIterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def unreachable_in(exc: BaseException, settings: Settings) -> Unreachable | None:
    """The one-line error for a Kafka or Redis connection failure in ``exc``'s chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Unreachable):
            return current
        if isinstance(current, KafkaConnectionError):
            return kafka_unreachable(settings)
        if isinstance(current, RedisConnectionError | RedisTimeoutError):
            return redis_unreachable(settings)
        current = current.__cause__ or current.__context__
    return None
