"""The one connection config: parsed from the environment, checked, turned into client options,
and never showing a password in a repr, a str, a log line or an error."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider

from ratifier.core.config import Settings
from ratifier.core.connection import KafkaConnection, Secret
from ratifier.core.errors import ConfigError
from ratifier.io.kafka import connection_options, make_consumer, make_producer
from ratifier.io.redis_client import connect
from ratifier.io.testing import self_signed_certificate
from ratifier.streams.engines.faust.app import broker_credentials

PASSWORD = "pw-0123456789-do-not-print"


def _scram(tmp_path: Path, **extra: str) -> Settings:
    cert, _key = self_signed_certificate(tmp_path)
    return Settings.from_env(
        {
            "RATIFIER_BOOTSTRAP_SERVERS": "broker.example:9093",
            "RATIFIER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RATIFIER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "RATIFIER_KAFKA_SASL_USERNAME": "tally",
            "RATIFIER_KAFKA_SASL_PASSWORD": PASSWORD,
            "RATIFIER_KAFKA_SSL_CAFILE": str(cert),
            "RATIFIER_REDIS_PASSWORD": PASSWORD,
            **extra,
        }
    )


def test_defaults_are_plaintext_without_credentials() -> None:
    connection = Settings.from_env({}).kafka_connection()
    assert connection == KafkaConnection("127.0.0.1:19092")
    assert connection_options(Settings.from_env({})) == {
        "bootstrap_servers": "127.0.0.1:19092",
        "security_protocol": "PLAINTEXT",
    }
    assert broker_credentials(Settings.from_env({})) is None


def test_sasl_ssl_options_carry_a_verifying_context_and_the_user(tmp_path: Path) -> None:
    options = connection_options(_scram(tmp_path))
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert options == {
        "bootstrap_servers": "broker.example:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "tally",
        "sasl_plain_password": PASSWORD,
    }


async def test_secrets_never_print(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _scram(tmp_path)
    connection = settings.kafka_connection()
    shown = [
        repr(settings),
        str(settings),
        repr(connection),
        connection.describe(),
        repr(settings.redis_connection()),
        repr(broker_credentials(settings)),
        str(settings.kafka_sasl_password),
    ]
    assert not [text for text in shown if PASSWORD in text]
    assert "SASL_SSL SCRAM-SHA-512 as tally" in connection.describe()
    assert settings.kafka_sasl_password.reveal() == PASSWORD
    # The library's own logger too: a CLI test earlier in the run may have quieted it.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="aiokafka"):
        producer = make_producer(settings, client_id="unit")
        consumer = make_consumer(settings, "t", group_id=None, client_id="unit")
        await producer.stop()  # never started: nothing to connect, only to close
        await consumer.stop()
    assert caplog.records
    assert PASSWORD not in caplog.text


def test_a_password_given_in_code_is_wrapped() -> None:
    settings = Settings(redis_password=PASSWORD)  # type: ignore[arg-type]
    assert isinstance(settings.redis_password, Secret)
    assert PASSWORD not in repr(settings)


def test_password_file_first_line(tmp_path: Path) -> None:
    secret = tmp_path / "tally.password"
    secret.write_text(f"{PASSWORD}\n")
    settings = _scram(
        tmp_path,
        RATIFIER_KAFKA_SASL_PASSWORD="",
        RATIFIER_KAFKA_SASL_PASSWORD_FILE=str(secret),
    )
    assert settings.kafka_connection().sasl_password.reveal() == PASSWORD


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RATIFIER_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT, SSL"),
        (
            {"RATIFIER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RATIFIER_KAFKA_SASL_MECHANISM": "X"},
            "must be one of PLAIN, SCRAM-SHA-256",
        ),
        ({"RATIFIER_KAFKA_SASL_MECHANISM": "PLAIN"}, r"needs a SASL_\* security protocol"),
    ],
)
def test_bad_security_settings_fail_at_once(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_incomplete_credentials_fail_in_one_line(tmp_path: Path) -> None:
    nouser = _scram(tmp_path, RATIFIER_KAFKA_SASL_USERNAME="")
    with pytest.raises(ConfigError, match="needs RATIFIER_KAFKA_SASL_USERNAME"):
        nouser.kafka_connection()
    both = _scram(tmp_path, RATIFIER_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="_PASSWORD or RATIFIER_KAFKA_SASL_PASSWORD_FILE"):
        both.kafka_connection()
    missing = _scram(
        tmp_path,
        RATIFIER_KAFKA_SASL_PASSWORD="",
        RATIFIER_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "absent"),
    )
    with pytest.raises(ConfigError, match="cannot read RATIFIER_KAFKA_SASL_PASSWORD_FILE"):
        missing.kafka_connection()
    oauth = Settings.from_env(
        {
            "RATIFIER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RATIFIER_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        }
    )
    with pytest.raises(ConfigError, match="RATIFIER_KAFKA_OAUTH_TOKEN_PROVIDER"):
        oauth.kafka_connection()


def test_oauth_provider_hook_is_built_from_module_callable(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "RATIFIER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "RATIFIER_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "RATIFIER_KAFKA_OAUTH_TOKEN_PROVIDER": "tests.unit.test_connection:StaticTokens",
        }
    )
    provider = connection_options(settings)["sasl_oauth_token_provider"]
    assert isinstance(provider, StaticTokens)
    wrong = settings.with_overrides(kafka_oauth_token_provider="tests.unit.test_connection:Secret")
    with pytest.raises(ConfigError, match=r"not an aiokafka\.abc\.AbstractTokenProvider"):
        connection_options(wrong)


def test_redis_takes_user_password_and_tls(tmp_path: Path) -> None:
    cert, _key = self_signed_certificate(tmp_path)
    settings = Settings.from_env(
        {
            "RATIFIER_REDIS_URL": "rediss://cache.example:6380/0",
            "RATIFIER_REDIS_USERNAME": "ratifier",
            "RATIFIER_REDIS_PASSWORD": PASSWORD,
            "RATIFIER_REDIS_SSL_CAFILE": str(cert),
        }
    )
    kwargs = connect(settings).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("ratifier", PASSWORD)
    assert kwargs["ssl_ca_certs"] == str(cert)
    with pytest.raises(ConfigError, match="needs a rediss:// URL"):
        settings.with_overrides(redis_url="redis://cache.example:6379/0").redis_connection()


class StaticTokens(AbstractTokenProvider):
    """An OAUTHBEARER provider, as a user's module defines one."""

    async def token(self) -> str:
        return "a-token"
