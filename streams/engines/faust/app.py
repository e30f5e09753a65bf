"""The one faust App of the tally, built by a factory so importing never connects anywhere."""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import MAX_PARTITION_FETCH_BYTES, connection_options


def create_app(settings: Settings, app_id: str | None = None) -> faust.App:
    """The tally's app; ``app_id`` (the consumer group) defaults to the prefix's tally id."""
    names = TopicNames.from_settings(settings)
    app_id = app_id or names.tally_app_id
    datadir = settings.state_dir / "tally" / app_id
    datadir.mkdir(parents=True, exist_ok=True)  # faust writes here but does not create it
    return faust.App(
        app_id,
        broker=settings.kafka_url,
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
        # Decisions wait for the offset commit's producer flush at most this long.
        broker_commit_interval=1.0,
        # faust's 60 s default leaves a crashed worker's partitions (and their open voting
        # windows) unowned for a minute; 10 s is aiokafka's own default.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        producer_linger_ms=1,
        # Changelog records (~0.5-1 KB) and decisions go out in bursts: larger batches mean
        # fewer produce requests per burst (faust's default is 16 KB).
        producer_max_batch_size=256 * 1024,
        # Bounds the records read ahead, as for every consumer of the project (ratifier.io.kafka).
        consumer_max_fetch_size=MAX_PARTITION_FETCH_BYTES,
        # A changelog the tally writes as bytes; faust must not try to (de)serialize it.
        value_serializer="raw",
        key_serializer="raw",
        # faust reads unprefixed variables (BROKER_SESSION_TIMEOUT, PRODUCER_MAX_REQUEST_SIZE,
        # APP_DATADIR, ...) that win over the settings above; the adapter relies on every one of
        # them, so faust gets no environment: Ratifier's processes are set with RATIFIER_* only.
        env={},
        producer_max_request_size=settings.max_record_bytes,
    )


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """The TLS and SASL of every other client of the project (``ratifier.io.kafka``), in the
    form faust takes them; None for PLAINTEXT."""
    options = connection_options(settings)
    context = options.get("ssl_context")
    mechanism = options.get("sasl_mechanism")
    if mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(
            oauth_cb=options["sasl_oauth_token_provider"], ssl_context=context
        )
    if mechanism:
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            ssl_context=context,
            mechanism=mechanism,
        )
    return None if context is None else faust.SSLCredentials(context)


def input_topic(app: faust.App, settings: Settings) -> faust.TopicT:
    """Candidates and verdicts as one faust topic of raw bytes: the tally decodes them itself."""
    names = TopicNames.from_settings(settings)
    return app.topic(
        names.candidates,
        names.verdicts,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
