"""One frozen settings object, read from ``RATIFIER_*`` environment variables.

Every address, port and name the processes use comes from here, so a deployment changes them in
one place. ``Settings.from_env()`` is the only reader of the environment.

| variable | default | meaning |
|---|---|---|
| RATIFIER_BOOTSTRAP_SERVERS | 127.0.0.1:<kafka port> | Kafka bootstrap servers |
| RATIFIER_KAFKA_PORT | 19092 | port of the local broker (`ratifier stack`) |
| RATIFIER_KAFKA_CONTROLLER_PORT | 19093 | KRaft controller port of the local broker |
| RATIFIER_KAFKA_VERSION | 4.3.0 | Apache Kafka version the local stack assembles |
| RATIFIER_REDIS_PORT | 16379 | port of the local redis-server |
| RATIFIER_REDIS_URL | redis://127.0.0.1:<redis port>/0 | Redis for read models |
| RATIFIER_TOPIC_PREFIX | ratifier | prefix of every topic and consumer group |
| RATIFIER_PARTITIONS | 4 | partitions of the topics Ratifier creates |
| RATIFIER_REPLICATION_FACTOR | 1 | replication factor of those topics |
| RATIFIER_STATE_DIR | ./.state | broker/redis data, logs, tally state |
| RATIFIER_CACHE_DIR | ./.cache | resolved Kafka jars (reused when present) |
| RATIFIER_POLICY_DIR | (built-in policies) | folder of policy ``*.toml`` files the tally loads |
| RATIFIER_HOLD_MS | 30000 | how long verdicts wait for a candidate that has not arrived |
| RATIFIER_RETENTION_MS | 60000 | how long a finished case is kept (late verdicts) before pruning |
| RATIFIER_RETRY_WAIT_MS | 600000 | how long a retried case waits for its next attempt |
| RATIFIER_FINISHED_HORIZON_MS | 604800000 | how long finished cases are remembered (`forever`) |
| RATIFIER_TALLY_STORE | rocksdb | transactional tally state: `rocksdb` (state dir) or `memory` |
| RATIFIER_TICK_INTERVAL_S | 0.5 | how often the tally checks deadlines |
| RATIFIER_TALLY_ENGINE | transactional | `transactional` (exactly-once) or `faust` |
| RATIFIER_COMMIT_INTERVAL_MS | 100 | how often the transactional tally commits |
| RATIFIER_MAX_CANDIDATE_BYTES | 200000 | largest candidate the tally takes (else `TOO_LARGE`) |
| RATIFIER_MAX_RECORD_BYTES | 1048576 | largest record a Ratifier producer sends |
| RATIFIER_WORKER_ID | (host-pid) | this process's id, in a header of each record it writes |
| RATIFIER_LOG_LEVEL | info | log level of Ratifier processes |
| RATIFIER_REVIEW_TOKENS_FILE | (none) | reviewers, `reviewer-id token` per line (docs/review.md) |
| RATIFIER_REVIEW_CLAIM_S | 600 | how long a reviewer's claim on a queued item lasts |
| RATIFIER_SIGNING_KEY | (none) | a validator's Ed25519 private key file: its verdicts are signed |
| RATIFIER_TALLY_SIGNING_KEY | (none) | the tally's private key file: its decisions are signed |
| RATIFIER_TALLY_PUBLIC_KEY | (none) | the tally's public key (base64): clients verify decisions |
| RATIFIER_METRICS_PORT | 0 | port of the process's /metrics, /healthz, /readyz (0: none) |
| RATIFIER_METRICS_HOST | 127.0.0.1 | address that endpoint listens on (0.0.0.0 in containers) |
| RATIFIER_GATEWAY_TOKENS_FILE | (none) | the HTTP gateway's clients, `name token` per line |
| RATIFIER_CONNECT_TIMEOUT_S | 10 | how long a command waits at start for Kafka and Redis |
| RATIFIER_POISON | dead-letter | a record a worker cannot use: dead-letter or skip |
| RATIFIER_POISON_MAX_CONSECUTIVE | 1000 | invalid records in a row that stop a worker (0: off) |
| RATIFIER_POISON_MAX_RATIO | 0.9 | invalid share (of >= 100 records) that stops it (0: off) |

Connection security (docs/security.md); a password never appears in a repr, a log or an error:

| variable | default | meaning |
|---|---|---|
| RATIFIER_KAFKA_SECURITY_PROTOCOL | PLAINTEXT | PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL |
| RATIFIER_KAFKA_SASL_MECHANISM | (none) | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER |
| RATIFIER_KAFKA_SASL_USERNAME | (none) | SASL user (PLAIN, SCRAM) |
| RATIFIER_KAFKA_SASL_PASSWORD | (none) | its password; or the first line of ..._PASSWORD_FILE |
| RATIFIER_KAFKA_SASL_PASSWORD_FILE | (none) | file holding the SASL password |
| RATIFIER_KAFKA_SSL_CAFILE | (system CAs) | CA file (PEM) of the brokers' certificates |
| RATIFIER_KAFKA_SSL_CERTFILE | (none) | client certificate (PEM) for mutual TLS |
| RATIFIER_KAFKA_SSL_KEYFILE | (none) | its private key (PEM) |
| RATIFIER_KAFKA_SSL_KEY_PASSWORD | (none) | passphrase of that key, if encrypted |
| RATIFIER_KAFKA_OAUTH_TOKEN_PROVIDER | (none) | `module:callable`: an aiokafka token provider |
| RATIFIER_REDIS_USERNAME | (none) | Redis ACL user (overrides the URL's) |
| RATIFIER_REDIS_PASSWORD | (none) | its password; or the first line of ..._PASSWORD_FILE |
| RATIFIER_REDIS_PASSWORD_FILE | (none) | file holding the Redis password |
| RATIFIER_REDIS_SSL_CAFILE | (system CAs) | CA file for a `rediss://` URL |
| RATIFIER_OUTCOMES_SIGNING_KEY | (none) | the outcomes writer's private key file: outcomes signed |
| RATIFIER_OUTCOMES_PUBLIC_KEY | (none) | its public key (base64): only its outcomes are trusted |
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ratifier.core.connection import (
    NO_SECRET,
    KafkaConnection,
    RedisConnection,
    Secret,
    check_security,
    mask_url_password,
    read_secret,
)
from ratifier.core.errors import ConfigError
from ratifier.core.signing import decode_public_key

ENV_PREFIX = "RATIFIER_"
# The tally's engines: exactly-once on Kafka transactions (default), or the faust adapter.
TALLY_ENGINES = ("transactional", "faust")
# Where the transactional tally keeps its state (docs/delivery.md, "State on disk").
TALLY_STORES = ("rocksdb", "memory")
FOREVER = "forever"  # RATIFIER_FINISHED_HORIZON_MS=forever


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_version: str = "4.3.0"
    redis_port: int = 16379
    bootstrap_servers: str = ""
    redis_url: str = field(default="", repr=False)
    topic_prefix: str = "ratifier"
    partitions: int = 4
    replication_factor: int = 1
    state_dir: Path = Path(".state")
    cache_dir: Path = Path(".cache")
    policy_dir: Path | None = None
    hold_ms: int = 30_000
    retention_ms: int = 60_000
    retry_wait_ms: int = 600_000
    finished_horizon_ms: int | None = 7 * 24 * 3600 * 1000  # None: forever
    tally_store: str = "rocksdb"
    tick_interval_s: float = 0.5
    tally_engine: str = "transactional"
    commit_interval_ms: int = 100
    max_candidate_bytes: int = 200_000
    max_record_bytes: int = 1_048_576
    worker_id: str = ""
    log_level: str = "info"
    review_tokens_file: Path | None = None
    review_claim_s: float = 600.0
    # Signatures (docs/signing.md): private key files, and the tally's public key for clients.
    signing_key: Path | None = None
    tally_signing_key: Path | None = None
    tally_public_key: str = ""
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    connect_timeout_s: float = 10.0
    gateway_tokens_file: Path | None = None
    # Connection security (docs/security.md): built into KafkaConnection / RedisConnection.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: Secret = NO_SECRET
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: Secret = NO_SECRET
    kafka_oauth_token_provider: str = ""
    redis_username: str = ""
    redis_password: Secret = NO_SECRET
    redis_password_file: Path | None = None
    redis_ssl_cafile: Path | None = None
    outcomes_signing_key: Path | None = None
    outcomes_public_key: str = ""
    # Records a worker cannot use: dead-letter | skip, and the brake (docs/delivery.md, "Poison").
    poison: str = "dead-letter"
    poison_max_consecutive: int = 1000
    poison_max_ratio: float = 0.9

    def __post_init__(self) -> None:
        self._check_security()
        # Derived defaults: the addresses follow the local stack's ports unless set explicitly.
        if not self.bootstrap_servers:
            object.__setattr__(self, "bootstrap_servers", f"127.0.0.1:{self.kafka_port}")
        if not self.redis_url:
            object.__setattr__(self, "redis_url", f"redis://127.0.0.1:{self.redis_port}/0")
        object.__setattr__(self, "state_dir", Path(self.state_dir).absolute())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).absolute())
        if self.policy_dir is not None:
            object.__setattr__(self, "policy_dir", Path(self.policy_dir).absolute())
        if self.review_tokens_file is not None:
            object.__setattr__(self, "review_tokens_file", Path(self.review_tokens_file).absolute())
        if self.gateway_tokens_file is not None:
            object.__setattr__(
                self, "gateway_tokens_file", Path(self.gateway_tokens_file).absolute()
            )
        if self.review_claim_s <= 0:
            raise ConfigError(f"{ENV_PREFIX}REVIEW_CLAIM_S must be > 0, got {self.review_claim_s}")
        if self.partitions < 1:
            raise ConfigError(f"{ENV_PREFIX}PARTITIONS must be >= 1, got {self.partitions}")
        if self.tally_public_key:
            try:
                decode_public_key(self.tally_public_key)
            except ValueError as exc:
                raise ConfigError(
                    f"{ENV_PREFIX}TALLY_PUBLIC_KEY must be a base64 Ed25519 public key: {exc}"
                ) from None
        if self.replication_factor < 1:
            raise ConfigError(
                f"{ENV_PREFIX}REPLICATION_FACTOR must be >= 1, got {self.replication_factor}"
            )
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}-{os.getpid()}")
        if self.tally_engine not in TALLY_ENGINES:
            raise ConfigError(
                f"{ENV_PREFIX}TALLY_ENGINE must be one of {', '.join(TALLY_ENGINES)}, "
                f"got {self.tally_engine!r}"
            )
        if self.tally_store not in TALLY_STORES:
            raise ConfigError(
                f"{ENV_PREFIX}TALLY_STORE must be one of {', '.join(TALLY_STORES)}, "
                f"got {self.tally_store!r}"
            )
        if self.finished_horizon_ms is not None and self.finished_horizon_ms < self.retention_ms:
            raise ConfigError(
                f"{ENV_PREFIX}FINISHED_HORIZON_MS ({self.finished_horizon_ms}) must be at least "
                f"{ENV_PREFIX}RETENTION_MS ({self.retention_ms}), or {FOREVER!r}"
            )
        if self.commit_interval_ms < 1:
            raise ConfigError(
                f"{ENV_PREFIX}COMMIT_INTERVAL_MS must be >= 1, got {self.commit_interval_ms}"
            )
        if not 0 < self.max_candidate_bytes < self.max_record_bytes:
            raise ConfigError(
                f"{ENV_PREFIX}MAX_CANDIDATE_BYTES must be > 0 and below "
                f"{ENV_PREFIX}MAX_RECORD_BYTES ({self.max_record_bytes}), "
                f"got {self.max_candidate_bytes}"
            )
        if self.poison not in ("dead-letter", "skip"):
            raise ConfigError(
                f"{ENV_PREFIX}POISON must be dead-letter or skip, got {self.poison!r}"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"{ENV_PREFIX}METRICS_PORT must be 0..65535, got {self.metrics_port}")
        if self.connect_timeout_s <= 0:
            raise ConfigError(
                f"{ENV_PREFIX}CONNECT_TIMEOUT_S must be > 0, got {self.connect_timeout_s}"
            )
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.topic_prefix):
            raise ConfigError(
                f"{ENV_PREFIX}TOPIC_PREFIX may hold only letters, digits, '.', '_' and '-': "
                f"{self.topic_prefix!r}"
            )

    def _check_security(self) -> None:
        for name in ("kafka_sasl_password", "kafka_ssl_key_password", "redis_password"):
            value = getattr(self, name)
            if isinstance(value, str):  # given in code as text: wrap it so it never prints
                object.__setattr__(self, name, Secret(value))
        check_security(self.kafka_security_protocol, self.kafka_sasl_mechanism)
        if self.outcomes_public_key:
            try:
                decode_public_key(self.outcomes_public_key)
            except ValueError as exc:
                raise ConfigError(
                    f"{ENV_PREFIX}OUTCOMES_PUBLIC_KEY must be a base64 Ed25519 public key: {exc}"
                ) from None

    def kafka_connection(self) -> KafkaConnection:
        """How every Kafka client of this process connects (reads a password file, if set)."""
        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=read_secret(
                self.kafka_sasl_password,
                self.kafka_sasl_password_file,
                name=f"{ENV_PREFIX}KAFKA_SASL_PASSWORD",
            ),
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
            ssl_key_password=self.kafka_ssl_key_password,
            oauth_token_provider=self.kafka_oauth_token_provider,
        )

    def redis_connection(self) -> RedisConnection:
        """How the Redis client connects (reads a password file, if set)."""
        return RedisConnection(
            url=self.redis_url,
            username=self.redis_username,
            password=read_secret(
                self.redis_password,
                self.redis_password_file,
                name=f"{ENV_PREFIX}REDIS_PASSWORD",
            ),
            ssl_cafile=self.redis_ssl_cafile,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``RATIFIER_*`` variables; keyword overrides win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        values.update(overrides)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def redis_url_masked(self) -> str:
        return mask_url_password(self.redis_url)

    @property
    def kafka_url(self) -> str:
        """The broker address in the form faust expects."""
        return ",".join(f"kafka://{host}" for host in self.bootstrap_servers.split(","))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "redis_url"
        )
        return f"Settings({shown}, redis_url={self.redis_url_masked!r})"


def _parse(name: str, raw: str, type_name: Any) -> Any:
    kind = str(type_name)
    if kind == "int | None" and raw.strip().lower() == FOREVER:
        return None
    try:
        if kind in ("int", "int | None"):
            return int(raw)
        if kind == "float":
            return float(raw)
        if "Path" in kind:
            return Path(raw)
        if kind == "Secret":
            return Secret(raw)
    except ValueError:
        expected = {
            "int": "an integer",
            "int | None": f"an integer or {FOREVER!r}",
            "float": "a number",
        }.get(kind, f"a {kind}")
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be {expected}, got {raw!r}") from None
    return raw
