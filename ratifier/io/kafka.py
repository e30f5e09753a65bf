"""aiokafka clients configured from :class:`Settings`: the one place their options are chosen."""

from __future__ import annotations

import contextlib
import logging
import pkgutil
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from ratifier.core.config import Settings
from ratifier.core.connection import KafkaConnection
from ratifier.core.errors import ConfigError

logger = logging.getLogger(__name__)

# How much a consumer fetches ahead per partition (aiokafka's and faust's default: 1 MiB). The
# prefetched records are the largest transient allocation of a busy worker: at 1 MiB the tally's
# RSS peaked ~30 MB higher while it read a backlog and did not come back down after (freed heap
# stays with the process), with no measurable gain in throughput (docs/benchmarks.md). Kafka
# still returns a record batch larger than this whole, so it caps no record size.
MAX_PARTITION_FETCH_BYTES = 256 * 1024


def connection_options(settings: Settings | KafkaConnection) -> dict[str, Any]:
    """The aiokafka options that reach and authenticate to the cluster: the bootstrap servers,
    TLS and SASL of ``settings.kafka_connection()`` (or of a component's own connection
    config). Every producer, consumer and admin client of the project starts from these
    (docs/security.md)."""
    if isinstance(settings, KafkaConnection):
        return client_options(settings)
    return client_options(settings.kafka_connection())


def client_options(connection: KafkaConnection) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "security_protocol": connection.security_protocol,
    }
    if connection.uses_ssl:
        options["ssl_context"] = ssl_context(connection)
    if connection.uses_sasl:
        options["sasl_mechanism"] = connection.sasl_mechanism
        if connection.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = token_provider(connection.oauth_token_provider)
        else:
            options["sasl_plain_username"] = connection.sasl_username
            options["sasl_plain_password"] = connection.sasl_password.reveal()
    return options


def ssl_context(connection: KafkaConnection) -> Any:
    """A verifying TLS client context: the given CA (else the system's), a client certificate
    when one is set. Hostnames are checked, as managed clusters expect."""
    key_password = connection.ssl_key_password.reveal() or None
    try:
        return create_ssl_context(
            cafile=None if connection.ssl_cafile is None else str(connection.ssl_cafile),
            certfile=None if connection.ssl_certfile is None else str(connection.ssl_certfile),
            keyfile=None if connection.ssl_keyfile is None else str(connection.ssl_keyfile),
            password=key_password,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"cannot load the Kafka TLS files: {exc}") from None


def token_provider(spec: str) -> AbstractTokenProvider:
    """The OAUTHBEARER token provider built by the factory ``module:callable``."""
    try:
        factory = pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"RATIFIER_KAFKA_OAUTH_TOKEN_PROVIDER {spec!r}: {exc}") from None
    provider = factory()
    if not isinstance(provider, AbstractTokenProvider):
        raise ConfigError(
            f"RATIFIER_KAFKA_OAUTH_TOKEN_PROVIDER {spec!r} returned {type(provider).__name__}, "
            "not an aiokafka.abc.AbstractTokenProvider"
        )
    return provider


@contextlib.contextmanager
def bootstrap_failures() -> Iterator[list[str]]:
    """Collect (and keep off the console) why aiokafka could not connect while bootstrapping.

    aiokafka logs the cause (a refused connection, a TLS error, SaslAuthenticationFailed) and
    raises only "Unable to bootstrap": the caller names the cause in its one-line error.
    """
    causes: list[str] = []

    def collect(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.getMessage().startswith("Unable connect"):
            causes.append(str(record.args[-1]) if isinstance(record.args, tuple) else "")
            return False
        return True

    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addFilter(collect)
    try:
        yield causes
    finally:
        aiokafka_log.removeFilter(collect)


def make_producer(
    source: KafkaConnection | Settings, *, client_id: str, **overrides: Any
) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        **connection_options(source),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 1,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    source: KafkaConnection | Settings,
    *topics: str,
    group_id: str | None,
    client_id: str,
    **overrides: Any,
) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        **connection_options(source),
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
