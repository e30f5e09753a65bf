"""Ed25519 signatures over verdicts and decisions: canonical bytes, signing, key rings.

Pure (bytes in, bytes out; no files, no Kafka): key files are :mod:`ratifier.io.keys`, the
tally's checks are :mod:`ratifier.streams.verification`. See ``docs/signing.md``.

What is signed is a record's **canonical signing bytes**: a fixed, language-neutral encoding of
every field of the record except ``signature`` itself (``key_id`` included), prefixed by the
record type, so a verdict cannot be moved to another case, attempt, candidate or validator, nor
a verdict's signature passed off as a decision's. Avro's binary body is not used for this: a
reader resolving an older or newer writer schema re-encodes differently, while this encoding
depends only on the values.

Encoding (all integers big-endian)::

    prefix   b"ratifier.sig.v1:" + record name + b"\\n"
    str      b"s" + u32 length + UTF-8           (enum members: their value, as a str)
    int      b"i" + i64
    float    b"d" + IEEE 754 binary64
    None     b"n"
    bytes    b"b" + u32 length + bytes
    bool     b"t" / b"f"
    list     b"l" + u32 count + items            (tuples)
    map      b"m" + u32 count + (key, value)...  (keys sorted by their UTF-8 bytes)
    record   b"r" + str(name) + u32 count + fields in declaration order (= the Avro schema's)

Nested records (a decision's candidate and votes) are encoded whole, their own signatures
included: a decision's signature also vouches for the votes it carries.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ratifier.core.models import EscalationPacket, PassDecision, RetryRequest, Verdict

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "KeyRing",
    "PublicKeySpec",
    "RingKey",
    "SignatureCheck",
    "SignatureMode",
    "Signer",
    "check_signature",
    "decode_public_key",
    "encode_public_key",
    "key_id_of",
    "public_key_of",
    "signing_bytes",
    "verify",
]

SIGNATURE_SIZE: Final = 64
PUBLIC_KEY_SIZE: Final = 32
_PREFIX: Final = b"ratifier.sig.v1:"
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

Signable = Verdict | PassDecision | RetryRequest | EscalationPacket
S = TypeVar("S", Verdict, PassDecision, RetryRequest, EscalationPacket)


class SignatureMode(StrEnum):
    """A policy's ``signatures`` setting: what the tally does with verdict signatures."""

    REQUIRED = "required"  # unsigned verdicts are dead-lettered (UNSIGNED)
    OPTIONAL = "optional"  # unsigned ones count; signed ones must verify
    OFF = "off"  # signatures are not looked at (the default)


class SignatureCheck(StrEnum):
    """What checking one record's signature against one expected key found."""

    VALID = "valid"
    UNSIGNED = "unsigned"
    WRONG_KEY = "wrong-key"  # signed, but by another key than the one expected
    INVALID = "invalid"  # the expected key's id, but the signature does not match the record


# --- canonical bytes -------------------------------------------------------------------------


def signing_bytes(record: Signable) -> bytes:
    """The bytes a signature of ``record`` covers: every field but ``signature``."""
    out = bytearray(_PREFIX)
    out += type(record).__name__.encode()
    out.append(0x0A)
    for name in _field_names(type(record)):
        if name != "signature":
            _put(out, getattr(record, name))
    return bytes(out)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def _put_str(out: bytearray, value: str) -> None:
    encoded = value.encode()
    out.append(0x73)  # s
    out += _U32.pack(len(encoded))
    out += encoded


def _put(out: bytearray, value: Any) -> None:
    # Order matters: bool before int (a subclass), str (enum members too) first as the commonest.
    if isinstance(value, str):
        _put_str(out, value)
    elif isinstance(value, bool):
        out.append(0x74 if value else 0x66)  # t / f
    elif isinstance(value, int):
        out.append(0x69)  # i
        out += _I64.pack(value)
    elif isinstance(value, float):
        out.append(0x64)  # d
        out += _F64.pack(value)
    elif value is None:
        out.append(0x6E)  # n
    elif isinstance(value, bytes):
        out.append(0x62)  # b
        out += _U32.pack(len(value))
        out += value
    elif isinstance(value, tuple | list):
        out.append(0x6C)  # l
        out += _U32.pack(len(value))
        for item in value:
            _put(out, item)
    elif isinstance(value, Mapping):
        out.append(0x6D)  # m
        out += _U32.pack(len(value))
        for key in sorted(value, key=lambda k: k.encode()):
            _put_str(out, key)
            _put(out, value[key])
    elif dataclasses.is_dataclass(value):
        names = _field_names(type(value))
        out.append(0x72)  # r
        _put_str(out, type(value).__name__)
        out += _U32.pack(len(names))
        for name in names:
            _put(out, getattr(value, name))
    else:
        raise TypeError(f"cannot sign a {type(value).__name__}")


# --- keys ------------------------------------------------------------------------------------


def key_id_of(public_key: bytes) -> str:
    """A public key's id: the first 8 bytes of its SHA-256, in hex (16 characters).

    Records carry it so the tally finds the key without trying each; it is only a name, the
    signature is still checked against the key itself.
    """
    return hashlib.sha256(public_key).digest()[:8].hex()


def encode_public_key(public_key: bytes) -> str:
    """The text form of a raw 32-byte public key, as policies list it: standard base64."""
    return base64.b64encode(public_key).decode("ascii")


def decode_public_key(text: str) -> bytes:
    """A raw public key from its base64 text; raises ValueError naming the problem."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise ValueError(f"{len(raw)} bytes, an Ed25519 public key has {PUBLIC_KEY_SIZE}")
    return raw


def public_key_of(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of ``private_key``."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def verify(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def check_signature(record: Signable, public_key: bytes) -> SignatureCheck:
    """Whether ``record`` is signed by ``public_key`` (raw), and if not, how it fails."""
    if not record.signature and not record.key_id:
        return SignatureCheck.UNSIGNED
    if record.key_id != key_id_of(public_key):
        return SignatureCheck.WRONG_KEY
    key = _public_key_object(public_key)
    if verify(key, record.signature, signing_bytes(record)):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID


@functools.lru_cache(maxsize=64)
def _public_key_object(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


class Signer:
    """Signs records with one private key; the records carry its key id."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = public_key_of(private_key)
        self.key_id = key_id_of(self.public_key)

    def sign(self, record: S) -> S:
        """``record`` with this key's id and signature set (any earlier ones replaced)."""
        unsigned = dataclasses.replace(record, key_id=self.key_id, signature=b"")
        signature = self._key.sign(signing_bytes(unsigned))
        return dataclasses.replace(unsigned, signature=signature)


@dataclass(frozen=True, slots=True)
class PublicKeySpec:
    """One public key a policy lists for a validator, valid in [not_before, not_after]."""

    public_key: bytes  # raw, 32 bytes
    not_before_ms: int | None = None  # None: no lower bound
    not_after_ms: int | None = None  # None: no upper bound

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def valid_at(self, at_ms: int) -> bool:
        if self.not_before_ms is not None and at_ms < self.not_before_ms:
            return False
        return self.not_after_ms is None or at_ms <= self.not_after_ms


@dataclass(frozen=True, slots=True)
class RingKey:
    """A key ready to verify with: the parsed key object is made once, when the ring is."""

    spec: PublicKeySpec
    key: Ed25519PublicKey


class KeyRing:
    """Every validator's public keys, by validator id and key id."""

    def __init__(self, keys: Iterable[tuple[str, PublicKeySpec]]) -> None:
        self._keys: dict[str, dict[str, RingKey]] = {}
        for owner, spec in keys:
            ring_key = RingKey(spec, Ed25519PublicKey.from_public_bytes(spec.public_key))
            self._keys.setdefault(owner, {})[spec.key_id] = ring_key

    def lookup(self, owner: str, key_id: str) -> RingKey | None:
        by_id = self._keys.get(owner)
        return None if by_id is None else by_id.get(key_id)

    def has_keys(self, owner: str) -> bool:
        return owner in self._keys

    def __len__(self) -> int:
        return sum(len(by_id) for by_id in self._keys.values())
