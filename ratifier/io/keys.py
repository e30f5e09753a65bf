"""Ed25519 key files: a private key written once (mode 0600, never over a file), read back.

The format is unencrypted PKCS#8 PEM, which OpenSSL and every Ed25519 library read
(``openssl pkey -in KEY -pubout`` shows its public key). Protect the file as you would a
password: whoever reads it can sign as its owner. See docs/signing.md.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ratifier.core.errors import ConfigError
from ratifier.core.signing import Signer

__all__ = ["load_private_key", "load_signer", "signer_from", "write_private_key"]

logger = logging.getLogger(__name__)


def write_private_key(path: str | Path, key: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
    """Write ``key`` (a new one if None) to ``path``, readable by its owner only; returns it.

    Raises :class:`ConfigError` if ``path`` exists: overwriting a key loses it for good.
    """
    path = Path(path)
    key = key or Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # O_EXCL: created here or not at all, and 0600 from the first byte (no chmod race).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create key file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``; :class:`ConfigError` naming the problem otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read key file: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Warned, not refused: secret mounts (e.g. Kubernetes) are often group-readable.
        logger.warning("key file %s is readable by others (mode %o); chmod 600 it", path, mode)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_signer(path: str | Path) -> Signer:
    return Signer(load_private_key(path))


def signer_from(path: str | Path | None) -> Signer | None:
    """A signer for the key file at ``path`` (a setting); None when the setting is not set."""
    return None if path is None else load_signer(path)
