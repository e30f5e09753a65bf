"""How a client reaches Kafka and Redis: addresses, TLS files and credentials, typed and checked.

``Settings.kafka_connection()`` and ``Settings.redis_connection()`` build these once from the
environment; ``ratifier.io.kafka`` and ``ratifier.io.redis_client`` turn them into client
options, so every producer, consumer, admin client and Redis client gets the same security.
A password is a :class:`Secret`: its repr and str are ``'***'``, so a logged settings object,
connection or exception never shows it; only ``reveal()`` hands the value to a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ratifier.core.errors import ConfigError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or key passphrase that never prints."""

    _value: str = field(default="", repr=False)

    def reveal(self) -> str:
        """The value, for the one call that hands it to a client library."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


NO_SECRET = Secret()


def read_secret(value: Secret, file: Path | None, *, name: str) -> Secret:
    """The secret given directly, or the first line of ``file``; not both.

    A file keeps the password out of the process environment (``/proc/<pid>/environ``) and out
    of shell history; Kubernetes and Docker secrets are mounted as such files.
    """
    if value and file is not None:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if file is None:
        return value
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {name}_FILE {file}: {exc.strerror}") from None
    lines = text.splitlines()
    return Secret(lines[0] if lines else "")


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Everything a Kafka client needs to connect and authenticate (docs/security.md).

    ``oauth_token_provider`` names a factory ``module:callable`` returning an aiokafka
    ``AbstractTokenProvider``: OAUTHBEARER tokens come from the user's identity provider.
    """

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: Secret = NO_SECRET
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: Secret = NO_SECRET
    oauth_token_provider: str = ""

    def __post_init__(self) -> None:
        check_security(self.security_protocol, self.sasl_mechanism)
        if self.uses_sasl:
            if self.sasl_mechanism == "OAUTHBEARER":
                if not self.oauth_token_provider:
                    raise ConfigError(
                        "RATIFIER_KAFKA_SASL_MECHANISM=OAUTHBEARER needs "
                        "RATIFIER_KAFKA_OAUTH_TOKEN_PROVIDER (module:callable)"
                    )
            elif not self.sasl_username or not self.sasl_password:
                raise ConfigError(
                    f"{self.security_protocol} with {self.sasl_mechanism} needs "
                    "RATIFIER_KAFKA_SASL_USERNAME and RATIFIER_KAFKA_SASL_PASSWORD "
                    "(or RATIFIER_KAFKA_SASL_PASSWORD_FILE)"
                )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError(
                "a client certificate needs both RATIFIER_KAFKA_SSL_CERTFILE and "
                "RATIFIER_KAFKA_SSL_KEYFILE"
            )

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def describe(self) -> str:
        """One line for logs and errors: where, how, as whom (never a secret)."""
        how = self.security_protocol
        if self.uses_sasl:
            who = self.sasl_username or "a token"
            how += f" {self.sasl_mechanism} as {who}"
        elif self.ssl_certfile is not None:
            how += f" with client certificate {self.ssl_certfile}"
        return f"{self.bootstrap_servers} ({how})"


def check_security(protocol: str, mechanism: str) -> None:
    """Reject an unknown protocol or mechanism, or a mechanism without SASL."""
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"RATIFIER_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
            f"got {protocol!r}"
        )
    sasl = protocol.startswith("SASL_")
    if sasl and mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"RATIFIER_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)} "
            f"with {protocol}, got {mechanism!r}"
        )
    if not sasl and mechanism:
        raise ConfigError(
            f"RATIFIER_KAFKA_SASL_MECHANISM={mechanism} needs a SASL_* security protocol, "
            f"not {protocol}"
        )


@dataclass(frozen=True, slots=True)
class RedisConnection:
    """A Redis URL (``redis://`` or ``rediss://`` for TLS) and its ACL user and password.

    Credentials given here win over any in the URL; the URL itself is never logged unmasked.
    """

    url: str = field(repr=False)
    username: str = ""
    password: Secret = NO_SECRET
    ssl_cafile: Path | None = None

    @property
    def masked_url(self) -> str:
        """The URL with any password in it replaced by ``***`` (for logs and messages)."""
        return mask_url_password(self.url)

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"RATIFIER_REDIS_URL must start with redis://, rediss:// or unix://, "
                f"got {self.url.split(':', 1)[0]!r}"
            )
        if self.ssl_cafile is not None and not self.url.startswith("rediss://"):
            raise ConfigError("RATIFIER_REDIS_SSL_CAFILE needs a rediss:// URL")


def mask_url_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
