"""The secure local stack (``ratifier stack up --secure``): TLS, SCRAM users per role, ACLs.

Everything lives under ``<state_dir>/secure/`` (files 0600), made once and kept:

- ``ca.pem`` / ``ca.key``: a CA made for this stack; clients trust ``ca.pem``;
- ``broker.p12``: the broker's key and certificate (CN=ratifier-broker, for 127.0.0.1 and
  localhost), signed by that CA; ``broker.password`` opens it;
- ``users/<name>.password``: the SCRAM-SHA-512 password of ``admin`` (a super user) and of
  each role of ``ratifier.core.acl.ROLES``; ``redis.password``: redis's ``ratifier`` user;
- ``outcomes.key``: the outcomes writer's Ed25519 key; every role's environment carries its
  public key, so the trusted store takes only outcomes it signed.

Once the folder exists the state dir's broker has only a SASL_SSL listener for clients, its
controller listener takes only TLS clients with a certificate of this CA (mutual TLS), and the
StandardAuthorizer denies whatever no ACL allows. See docs/security.md.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ratifier.core.acl import ROLES
from ratifier.core.config import ENV_PREFIX, Settings
from ratifier.core.errors import StackError
from ratifier.core.signing import encode_public_key
from ratifier.io.keys import load_signer, write_private_key
from ratifier.ops.stack.process import require_program

ADMIN = "admin"
BROKER_DN = "CN=ratifier-broker"
SCRAM = "SCRAM-SHA-512"
REDIS_USER = "ratifier"
USERS = (ADMIN, *ROLES)
_CERT_DAYS = "825"
_HINT = "Run scripts/install-prereqs as root (or: apt-get install openssl)."


@dataclass(frozen=True, slots=True)
class SecurePaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> SecurePaths:
        return cls(settings.state_dir / "secure")

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def keystore(self) -> Path:
        return self.root / "broker.p12"

    @property
    def keystore_password(self) -> Path:
        return self.root / "broker.password"

    @property
    def redis_password(self) -> Path:
        return self.root / "redis.password"

    def password_file(self, user: str) -> Path:
        return self.root / "users" / f"{user}.password"

    @property
    def outcomes_key(self) -> Path:
        return self.root / "outcomes.key"

    @property
    def complete(self) -> Path:
        """Written last: its presence means every file above exists."""
        return self.root / "ready"


def enabled(settings: Settings) -> bool:
    """Whether this state dir's stack is the secure one (``up --secure`` made its material)."""
    return SecurePaths.of(settings).complete.is_file()


def ensure_material(settings: Settings) -> SecurePaths:
    """Make the CA, the broker's keystore and every password, unless made before."""
    paths = SecurePaths.of(settings)
    if paths.complete.is_file():
        if not paths.outcomes_key.exists():  # made by a version without signed outcomes
            write_private_key(paths.outcomes_key)
        return paths
    openssl = require_program("openssl", _HINT)
    (paths.root / "users").mkdir(parents=True, exist_ok=True)
    os.chmod(paths.root, 0o700)
    for user in USERS:
        _write_secret(paths.password_file(user), secrets.token_hex(16))
    _write_secret(paths.redis_password, secrets.token_hex(16))
    _write_secret(paths.keystore_password, secrets.token_hex(16))
    work = paths.root
    broker_key, broker_csr = work / "broker.key", work / "broker.csr"
    broker_cert = work / "broker.pem"
    extensions = work / "broker.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        openssl,
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _CERT_DAYS,
        "-subj", "/CN=ratifier-local-ca", "-keyout", str(paths.ca_key), "-out", str(paths.ca_cert),
    )  # fmt: skip
    _openssl(
        openssl,
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/{BROKER_DN}",
        "-keyout", str(broker_key), "-out", str(broker_csr),
    )  # fmt: skip
    _openssl(
        openssl,
        "x509", "-req", "-in", str(broker_csr), "-CA", str(paths.ca_cert),
        "-CAkey", str(paths.ca_key), "-CAcreateserial", "-days", _CERT_DAYS,
        "-extfile", str(extensions), "-out", str(broker_cert),
    )  # fmt: skip
    _openssl(
        openssl,
        "pkcs12", "-export", "-in", str(broker_cert), "-inkey", str(broker_key),
        "-certfile", str(paths.ca_cert), "-name", "broker", "-out", str(paths.keystore),
        "-passout", f"file:{paths.keystore_password}",
    )  # fmt: skip
    if not paths.outcomes_key.exists():
        write_private_key(paths.outcomes_key)
    for path in paths.root.iterdir():
        if path.is_file():
            os.chmod(path, 0o600)
    paths.complete.write_text("")
    return paths


def password(settings: Settings, user: str) -> str:
    return SecurePaths.of(settings).password_file(user).read_text().strip()


def scram_format_args(settings: Settings) -> list[str]:
    """``kafka-storage format`` arguments that create every user's SCRAM credential.

    KRaft keeps SCRAM credentials in its metadata log: made at format time, they exist before
    the broker's first start (no chicken-and-egg with the authorizer).
    """
    args: list[str] = []
    for user in USERS:
        args += ["--add-scram", f"{SCRAM}=[name={user},password={password(settings, user)}]"]
    return args


def listener_properties(settings: Settings, port: int, controller_port: int, host: str) -> str:
    """server.properties lines of the secure broker (replacing the PLAINTEXT listener lines)."""
    paths = SecurePaths.of(settings)
    store_password = paths.keystore_password.read_text().strip()
    admin_password = password(settings, ADMIN)
    return f"""\
# Secure stack (docs/security.md): SASL_SSL for clients, mutual TLS for the controller.
listeners=SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=SASL_SSL://{host}:{port}
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms={SCRAM}
sasl.mechanism.inter.broker.protocol={SCRAM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required \
username="{ADMIN}" password="{admin_password}";
ssl.keystore.type=PKCS12
ssl.keystore.location={paths.keystore}
ssl.keystore.password={store_password}
ssl.key.password={store_password}
ssl.truststore.type=PEM
ssl.truststore.location={paths.ca_cert}
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{ADMIN};User:{BROKER_DN}
"""


def redis_properties(settings: Settings) -> str:
    """redis.conf lines: the default user off, one ACL user with a password."""
    secret = SecurePaths.of(settings).redis_password.read_text().strip()
    return f"user default off\nuser {REDIS_USER} on >{secret} ~* &* +@all\n"


def redis_credentials(settings: Settings) -> tuple[str, str] | None:
    """The redis user and password of a secure stack; None for the plain one."""
    if not enabled(settings):
        return None
    return REDIS_USER, SecurePaths.of(settings).redis_password.read_text().strip()


def client_environment(settings: Settings, user: str) -> dict[str, str]:
    """The ``RATIFIER_*`` variables that connect a process as ``user`` (admin or a role)."""
    if user not in USERS:
        raise StackError(f"no user {user!r} on the secure stack; users: {', '.join(USERS)}")
    paths = SecurePaths.of(settings)
    outcomes_public = encode_public_key(load_signer(paths.outcomes_key).public_key)
    signing = {f"{ENV_PREFIX}OUTCOMES_SIGNING_KEY": str(paths.outcomes_key)}
    return {
        **(signing if user == "outcomes" else {}),
        f"{ENV_PREFIX}OUTCOMES_PUBLIC_KEY": outcomes_public,
        f"{ENV_PREFIX}BOOTSTRAP_SERVERS": f"127.0.0.1:{settings.kafka_port}",
        f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        f"{ENV_PREFIX}KAFKA_SASL_MECHANISM": SCRAM,
        f"{ENV_PREFIX}KAFKA_SASL_USERNAME": user,
        f"{ENV_PREFIX}KAFKA_SASL_PASSWORD_FILE": str(paths.password_file(user)),
        f"{ENV_PREFIX}KAFKA_SSL_CAFILE": str(paths.ca_cert),
        f"{ENV_PREFIX}REDIS_USERNAME": REDIS_USER,
        f"{ENV_PREFIX}REDIS_PASSWORD_FILE": str(paths.redis_password),
    }


def client_settings(settings: Settings, user: str) -> Settings:
    """``settings`` connecting as ``user`` (the file-based password, the stack's CA)."""
    env = client_environment(settings, user)
    from_env = Settings.from_env(env)
    return settings.with_overrides(
        bootstrap_servers=from_env.bootstrap_servers,
        kafka_security_protocol=from_env.kafka_security_protocol,
        kafka_sasl_mechanism=from_env.kafka_sasl_mechanism,
        kafka_sasl_username=from_env.kafka_sasl_username,
        kafka_sasl_password=from_env.kafka_sasl_password,
        kafka_sasl_password_file=from_env.kafka_sasl_password_file,
        kafka_ssl_cafile=from_env.kafka_ssl_cafile,
        redis_username=from_env.redis_username,
        redis_password=from_env.redis_password,
        redis_password_file=from_env.redis_password_file,
        outcomes_signing_key=from_env.outcomes_signing_key,
        outcomes_public_key=from_env.outcomes_public_key,
    )


def _write_secret(path: Path, value: str) -> None:
    if not path.exists():
        path.write_text(value + "\n")
        os.chmod(path, 0o600)


def _openssl(openssl: str, *args: str) -> None:
    done = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")
