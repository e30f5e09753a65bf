"""Ed25519 signatures over verdicts and decisions: canonical bytes, signing, key rings.

Pure (bytes in, bytes out; no files, no Kafka): key files are :mod:`ratifier.io.keys`, the
tally's checks are :mod:`ratifier.streams.rules.verification`. See ``docs/signing.md``.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from typing import Any, Final, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ratifier.core.models import EscalationPacket, Outcome, PassDecision, RetryRequest, Verdict

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
S = TypeVar("S", bound=Signable)


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


def signing_bytes(record: Signable | Outcome) -> bytes:
    """The bytes a signature of ``record`` covers: every field but ``signature`` (an outcome,
    which has none, is covered whole: its signature travels in a header, docs/security.md)."""
    kind = record.__class__
    plan = _PLANS.get(kind)
    if plan is None:
        plan = _PLANS[kind] = _plan(kind)
    prefix, values_of = plan
    out = bytearray(prefix)
    for value in values_of(record):
        _HANDLERS.get(value.__class__, _put)(out, value)
    _put_later_fields(out, record, kind)
    return bytes(out)


# Fields added after the signing bytes were fixed, with their defaults: covered (as their name,
# then their value) only when they differ from the default, so a record without them keeps the
# bytes, and the signatures, it had before they existed (docs/signing.md).
LATER_FIELDS: Mapping[str, Any] = {"round": None, "rounds": ()}


def _later_fields(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind) if f.name in LATER_FIELDS)


def _set_later_fields(record: Any, later: tuple[str, ...]) -> list[tuple[str, Any]]:
    return [
        (name, value) for name in later if (value := getattr(record, name)) != LATER_FIELDS[name]
    ]


def _put_later_fields(out: bytearray, record: Any, kind: type) -> None:
    for name, value in _set_later_fields(record, _later_fields(kind)):
        _put_str(out, name)
        _HANDLERS.get(value.__class__, _put)(out, value)


# Per record type: the prefix, and a getter of every field but the signature, in order. Built on
# first use; the tally's verification computes a verdict's bytes for each verdict it reads.
_PLANS: dict[type, tuple[bytes, Callable[[Any], tuple[Any, ...]]]] = {}


def _plan(kind: type) -> tuple[bytes, Callable[[Any], tuple[Any, ...]]]:
    names = [
        f.name
        for f in dataclasses.fields(kind)
        if f.name != "signature" and f.name not in LATER_FIELDS
    ]
    prefix = _PREFIX + kind.__name__.encode() + b"\n"
    return prefix, _getter(names)


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    get = attrgetter(*names)
    if len(names) == 1:  # attrgetter of one name gives the value, not a tuple
        return lambda record: (get(record),)
    return get


def _put_str(out: bytearray, value: str) -> None:
    encoded = value.encode()
    out += b"s"
    out += _U32.pack(len(encoded))
    out += encoded


def _put_int(out: bytearray, value: int) -> None:
    out += b"i"
    out += _I64.pack(value)


def _put_float(out: bytearray, value: float) -> None:
    out += b"d"
    out += _F64.pack(value)


def _put_none(out: bytearray, value: None) -> None:
    out += b"n"


def _put_bytes(out: bytearray, value: bytes) -> None:
    out += b"b"
    out += _U32.pack(len(value))
    out += value


def _put_bool(out: bytearray, value: bool) -> None:
    out += b"t" if value else b"f"


def _put_list(out: bytearray, value: tuple[Any, ...] | list[Any]) -> None:
    out += b"l"
    out += _U32.pack(len(value))
    for item in value:
        _HANDLERS.get(item.__class__, _put)(out, item)


def _put_map(out: bytearray, value: Mapping[str, Any]) -> None:
    out += b"m"
    out += _U32.pack(len(value))
    for key in sorted(value, key=str.encode):
        _put_str(out, key)
        item = value[key]
        _HANDLERS.get(item.__class__, _put)(out, item)


_HANDLERS: dict[type, Callable[[bytearray, Any], None]] = {
    str: _put_str,
    int: _put_int,
    float: _put_float,
    type(None): _put_none,
    bytes: _put_bytes,
    bool: _put_bool,
    tuple: _put_list,
    list: _put_list,
    dict: _put_map,
}


def _put(out: bytearray, value: Any) -> None:
    """A value of a type met for the first time: find its handler, remember it, use it."""
    kind = value.__class__
    handler: Callable[[bytearray, Any], None]
    # Order matters: bool before int (a subclass); str subclasses are the models' enums.
    if issubclass(kind, str):
        handler = _put_str
    elif issubclass(kind, bool):
        handler = _put_bool
    elif issubclass(kind, int):
        handler = _put_int
    elif issubclass(kind, float):
        handler = _put_float
    elif issubclass(kind, bytes):
        handler = _put_bytes
    elif issubclass(kind, tuple | list):
        handler = _put_list
    elif issubclass(kind, Mapping):
        handler = _put_map
    elif dataclasses.is_dataclass(value):
        handler = _record_handler(kind)
    else:
        raise TypeError(f"cannot sign a {kind.__name__}")
    _HANDLERS[kind] = handler
    handler(out, value)


def _record_handler(kind: type) -> Callable[[bytearray, Any], None]:
    later = _later_fields(kind)
    names = [f.name for f in dataclasses.fields(kind) if f.name not in later]
    name = b"r" + b"s" + _U32.pack(len(kind.__name__.encode())) + kind.__name__.encode()
    header = name + _U32.pack(len(names))
    values_of = _getter(names)

    def put(out: bytearray, value: Any) -> None:
        extra = _set_later_fields(value, later) if later else ()
        # The count covers the later fields set, each written as its name then its value.
        out += header if not extra else name + _U32.pack(len(names) + len(extra))
        for item in values_of(value):
            _HANDLERS.get(item.__class__, _put)(out, item)
        for field_name, item in extra:
            _put_str(out, field_name)
            _HANDLERS.get(item.__class__, _put)(out, item)

    return put


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

    @classmethod
    def generate(cls) -> Signer:
        """A signer with a new key that lives in memory only (tests, benchmarks, chaos runs)."""
        return cls(Ed25519PrivateKey.generate())

    def sign(self, record: S) -> S:
        """``record`` with this key's id and signature set (any earlier ones replaced)."""
        unsigned = dataclasses.replace(record, key_id=self.key_id, signature=b"")
        signature = self._key.sign(signing_bytes(unsigned))
        return dataclasses.replace(unsigned, signature=signature)

    def sign_bytes(self, data: bytes) -> bytes:
        """The signature of ``data`` (canonical bytes of a record without a signature field)."""
        return self._key.sign(data)


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

    def __len__(self) -> int:
        return sum(len(by_id) for by_id in self._keys.values())
